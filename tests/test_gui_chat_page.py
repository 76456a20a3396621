"""ChatPage driven by the scripted fake engine: sources, loading, streaming, compare mode, history, stop, clear,
regenerate, messages (roles, plain text, code, copy, speed), the exported GGUF column and engine failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import QApplication

from engine.light import protocol
from gui import export_column
from gui.app_state import AppState
from gui.pages.chat_page import ChatPage

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]
HTML = "<b>bold</b><script>x</script>"
REPO = Path(__file__).resolve().parent.parent
# An engine that fails to load its model the way the real one does: error, failed state, stderr, exit 1.
FAILING = [sys.executable, "-c", (
    f"import sys; sys.path.insert(0, {str(REPO)!r}); from engine.light import protocol as p\n"
    "for m in (p.Hello(1, 'fake'), p.Error('model', 'no model <here>', 'download it first'), p.State('failed')):\n"
    "    print(p.encode(m), flush=True)\n"
    "sys.stderr.write('Traceback: model folder missing\\n'); sys.exit(1)")]


def make_run(home: Path, name: str, *, state: str = "finished", adapter: bool = True, age_s: float = 0) -> Path:
    folder = home / "runs" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: demo\ndataset: /data/harbor.jsonl\n")
    (folder / "events.jsonl").write_text(f'{{"type": "state", "state": "{state}"}}\n')
    if adapter:
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_config.json").write_text("{}")
    stamp = time.time() - age_s
    os.utime(folder / "config.yaml", (stamp, stamp))
    return folder


def make_export(home: Path, run: str, quant: str, *, passed: bool = True, suffix: str = "", age_s: float = 0) -> Path:
    """An export folder as the engine publishes it: the GGUF and its report (verification.json) naming it."""
    folder = home / "exports" / f"{run}-gguf-{quant}{suffix}"
    folder.mkdir(parents=True)
    gguf = folder / f"{run}-{quant}.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    report = {"run": run, "format": "gguf", "passed": passed, "gguf": {"file": gguf.name}, "files": [gguf.name]}
    (folder / "verification.json").write_text(json.dumps(report))
    stamp = time.time() - age_s
    os.utime(gguf, (stamp, stamp))
    return gguf


@pytest.fixture
def make_page(qtbot, home):
    """Builds pages that record every protocol message they send (``page.sent``) and shuts their engines down
    afterwards (not through qtbot.addWidget: pytest-qt deletes its widgets before fixtures end)."""
    pages = []

    def make(command=FAKE) -> ChatPage:
        page = ChatPage(AppState(home=str(home)), engine_command=command)
        page.sent = []
        send = page.client.send
        page.client.send = lambda msg: page.sent.append(msg) or send(msg)
        pages.append(page)
        return page

    yield make
    for page in pages:
        if page.client.is_running():
            with qtbot.waitSignal(page.client.sig_exited, timeout=5_000):
                page.shutdown()
        page.deleteLater()


@pytest.fixture
def page(home, make_page):
    make_run(home, "alpha")
    return make_page()


def load(qtbot, page, data="run:alpha"):
    page.source_combo.setCurrentIndex(page.source_combo.findData(data))
    page.load_button.click()
    qtbot.waitUntil(page.send_button.isEnabled, timeout=10_000)


def say(qtbot, page, text):
    page.input_edit.setPlainText(text)
    page.send_button.click()
    qtbot.waitUntil(lambda: page.send_button.isEnabled() and not page.stop_button.isEnabled(), timeout=10_000)


def chats(page):
    return [m for m in page.sent if isinstance(m, protocol.Chat)]


def test_lists_finished_runs_with_adapter_newest_first(home, make_page):
    make_run(home, "old", age_s=100)
    make_run(home, "new")
    make_run(home, "stopped", state="stopped")
    make_run(home, "no-adapter", adapter=False)
    page = make_page()
    items = [page.source_combo.itemData(i) for i in range(page.source_combo.count())]
    assert items == ["run:new", "run:old", "model:demo"]
    assert page.source_combo.itemText(2) == "Base model only: demo"
    page._state.set_model("llama-3.2-1b")  # the picker follows the chosen base model
    assert page.source_combo.itemText(2) == "Base model only: llama-3.2-1b"
    page.source_combo.setCurrentIndex(page.source_combo.findData("model:llama-3.2-1b"))
    assert page.left_pane.title.text() == "Base model: llama-3.2-1b"  # the pane says what it will talk to
    make_run(home, "newest")
    page.show()  # showEvent refreshes, and a run that finished since is chosen
    assert page.source_combo.itemData(0) == "run:newest" and page.source_combo.currentData() == "run:newest"
    assert page.left_pane.title.text() == "Fine-tuned: newest"
    page.source_combo.setCurrentIndex(page.source_combo.findData("run:old"))
    page.refresh()  # nothing new: the user's choice stays
    assert page.source_combo.currentData() == "run:old"


def test_load_and_send_streams_into_fine_tuned_pane(qtbot, page):
    assert not page.send_button.isEnabled()
    load(qtbot, page)
    assert page.status_label.text().startswith("Ready: alpha")
    page.show()
    qtbot.waitExposed(page)
    page.activateWindow()
    page.input_edit.setFocus()
    page.input_edit.setPlainText("hello there")
    qtbot.keyClick(page.input_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "[on] You said: hello there" in page.left_pane.transcript.toPlainText(), timeout=10_000)
    assert page.input_edit.toPlainText() == ""
    assert page.left_pane.transcript.toPlainText().startswith("You: hello there\nFine-tuned: [on] You said")
    assert not page.right_pane.isVisible() and chats(page)[0].adapter == "on"


def test_compare_answers_twice_one_request_at_a_time(qtbot, page):
    load(qtbot, page)
    events = []
    page.client.sig_chat_token.connect(lambda t: events.append(("token", t.id)))
    page.client.sig_chat_done.connect(lambda d: events.append(("done", d.id)))
    page.compare_box.setChecked(True)
    page.system_edit.setPlainText("Be brief.")
    page.sampling["temperature"].setValue(0.3)
    say(qtbot, page, "compare me")
    first, second = chats(page)
    assert (first.adapter, second.adapter) == ("on", "off")
    assert first.system == "Be brief." and first.temperature == pytest.approx(0.3)
    runs_of_events = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert runs_of_events == [("token", first.id), ("done", first.id), ("token", second.id), ("done", second.id)]
    assert "[on] You said: compare me" in page.left_pane.transcript.toPlainText()
    assert "[off] You said: compare me" in page.right_pane.transcript.toPlainText()
    assert page.left_pane.title.text() == "Fine-tuned: alpha" and page.right_pane.title.text() == "Base model"
    assert page.right_pane.transcript.messages()[-1].name == "Base model"


def test_multi_turn_history_is_sent(qtbot, page):
    load(qtbot, page)
    say(qtbot, page, "first")
    say(qtbot, page, "second")
    assert chats(page)[1].messages == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "[on] You said: first"},
        {"role": "user", "content": "second"},
    ]
    assert "Fine-tuned: [on] You said: second" in page.left_pane.transcript.toPlainText()


def fragments(message):
    """(text, fixed pitch, bold, anchor) of each run of text in a message's document."""
    out = []
    block = message.body.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            out.append((it.fragment().text(), fmt.fontFixedPitch(), fmt.fontWeight() > QFont.Weight.Normal,
                        fmt.isAnchor()))
            it += 1
        block = block.next()
    return out


def test_model_text_is_plain_text(qtbot, page):
    load(qtbot, page)
    say(qtbot, page, HTML + ' <a href="https://example.com">link</a>')
    transcript = page.left_pane.transcript
    assert f"Fine-tuned: [on] You said: {HTML}" in transcript.toPlainText()
    reply = transcript.messages()[-1]
    assert reply.role == "assistant" and reply.text().endswith('<a href="https://example.com">link</a>')
    assert not any(bold or anchor for _, _, bold, anchor in fragments(reply))
    assert reply.body.document().toPlainText() == reply.text()  # shown literally, markup and all


def test_messages_show_role_code_speed_and_copy(qtbot, page):
    load(qtbot, page)
    say(qtbot, page, "run ```print(1)``` now")
    user, reply = page.left_pane.transcript.messages()
    assert (user.role, user.name, reply.role, reply.name) == ("user", "You", "assistant", "Fine-tuned")
    assert user.background() != reply.background()  # the two roles are told apart at a glance
    pieces = fragments(reply)
    assert [text for text, fixed, _, _ in pieces if fixed] == ["```print(1)```"]
    assert all(not fixed for text, fixed, _, _ in pieces if "now" in text or "said" in text)
    assert re.fullmatch(r"6 tokens · \d+(\.\d)? tok/s", reply.footer.text()), reply.footer.text()
    QGuiApplication.clipboard().clear()
    reply.copy_button.click()
    assert QGuiApplication.clipboard().text() == "[on] You said: run ```print(1)``` now"
    assert user.copy_button is None


def test_regenerate_asks_the_last_message_again(qtbot, page):
    load(qtbot, page)
    assert not page.regenerate_button.isEnabled()
    say(qtbot, page, "first")
    say(qtbot, page, "second")
    assert page.regenerate_button.isEnabled()
    page.regenerate_button.click()
    qtbot.waitUntil(lambda: page.send_button.isEnabled() and not page.stop_button.isEnabled(), timeout=10_000)
    assert chats(page)[-1].messages == chats(page)[-2].messages  # the same conversation, asked again
    roles = [(m.role, m.text()) for m in page.left_pane.transcript.messages()]
    assert roles == [("user", "first"), ("assistant", "[on] You said: first"),
                     ("user", "second"), ("assistant", "[on] You said: second")]  # the old reply was replaced


def test_stop_cancels_running_and_drops_queued(qtbot, page):
    load(qtbot, page)
    page.compare_box.setChecked(True)
    page.input_edit.setPlainText(" ".join(["word"] * 400))  # about 4 s of streaming
    with qtbot.waitSignal(page.client.sig_chat_token, timeout=10_000):
        page.send_button.click()
    assert page.stop_button.isEnabled() and not page.send_button.isEnabled()
    with qtbot.waitSignal(page.client.sig_chat_done, timeout=5_000) as done:
        page.stop_button.click()
    assert done.args[0].reason == "cancelled"
    assert [type(m) for m in page.sent] == [protocol.Chat, protocol.Cancel]  # the base request was never sent
    assert page.left_pane.transcript.toPlainText().rstrip().endswith("(stopped)")
    assert "(not sent: generation stopped)" in page.right_pane.transcript.toPlainText()
    assert page.right_pane.transcript.history() == []
    say(qtbot, page, "after")  # usable again; the partial reply stays in the history, the unanswered turn does not
    fine_tuned, base = chats(page)[-2:]
    assert [m["role"] for m in fine_tuned.messages] == ["user", "assistant", "user"]
    assert base.messages == [{"role": "user", "content": "after"}]


def test_clear_empties_panes_and_history(qtbot, page):
    load(qtbot, page)
    say(qtbot, page, "remember me")
    page.clear_button.click()
    assert page.left_pane.transcript.toPlainText() == "" and page.left_pane.transcript.history() == []
    say(qtbot, page, "fresh")
    assert chats(page)[-1].messages == [{"role": "user", "content": "fresh"}]


def test_copy_puts_last_reply_on_clipboard(qtbot, page):
    load(qtbot, page)
    say(qtbot, page, "copy this")
    page.left_pane.copy_button.click()
    assert QGuiApplication.clipboard().text() == "[on] You said: copy this"


def test_reload_base_model_only(qtbot, page):
    load(qtbot, page)
    load(qtbot, page, "model:demo")  # the running engine is shut down and a new one started
    assert not page.error_label.isVisibleTo(page)
    assert page.left_pane.title.text() == "Base model: demo" and not page.compare_box.isEnabled()
    assert page.left_pane.transcript.empty_label.isVisibleTo(page)
    assert "No run has finished" not in page.left_pane.transcript.empty_label.text()  # alpha has
    say(qtbot, page, "base")
    assert chats(page)[-1].adapter == "off"


def test_engine_crash_mid_reply_shows_error(qtbot, page):
    load(qtbot, page)
    page.input_edit.setPlainText(" ".join(["word"] * 400))
    with qtbot.waitSignal(page.client.sig_chat_token, timeout=10_000):
        page.send_button.click()
    with qtbot.waitSignal(page.client.sig_exited, timeout=5_000):
        page.client.kill()  # from the page's point of view, the engine died on its own
    assert page.error_label.isVisibleTo(page) and "stopped unexpectedly" in page.error_label.text()
    assert "(the engine stopped)" in page.left_pane.transcript.toPlainText()
    assert not page.send_button.isEnabled() and not page.stop_button.isEnabled()
    load(qtbot, page)  # and it can be loaded again
    assert not page.error_label.isVisibleTo(page)


def test_engine_load_error_shows_message_and_stderr(qtbot, make_page):
    page = make_page(FAILING)
    with qtbot.waitSignal(page.client.sig_exited, timeout=10_000):
        page.load_button.click()
    text = page.error_label.text()
    assert "no model <here>" in text and "Hint: download it first" in text
    assert "exit code 1" in text and "model folder missing" in text
    assert page.error_label.textFormat() == Qt.TextFormat.PlainText and not page.send_button.isEnabled()


def test_engine_that_cannot_start(qtbot, make_page):
    page = make_page(["/nonexistent/engine"])
    with qtbot.waitSignal(page.client.sig_exited, timeout=10_000):
        page.load_button.click()
    assert "could not start" in page.error_label.text()


def test_close_shuts_the_engine_down(qtbot, page):
    load(qtbot, page)
    with qtbot.waitSignal(page.client.sig_exited, timeout=5_000) as exited:
        page.close()
    assert exited.args[0].ok and page.sent[-1] == protocol.Shutdown()
    assert page.error_label.text() == "" and page.status_label.text() == "Engine stopped."


def test_chat_page_loads_no_ml_library():
    probe = ("import sys, os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'; import gui.pages.chat_page; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'peft', 'datasets'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert out.strip() == "[]"


def test_app_quit_waits_for_the_engine(qtbot, page):
    load(qtbot, page)
    QApplication.instance().aboutToQuit.emit()  # the handler waits, so the engine is gone when it returns
    assert not page.client.is_running() and page.sent[-1] == protocol.Shutdown()


def test_comparing_gives_both_conversations_the_same_width(qtbot, page):
    page.resize(1200, 700)
    page.show()
    qtbot.waitExposed(page)
    load(qtbot, page)
    page.compare_box.setChecked(True)
    qtbot.wait(20)
    left, right = page.left_pane.width(), page.right_pane.width()
    assert right > 0 and abs(left - right) <= 12


def choose_export(page, path) -> None:
    """Pick ``path`` in the export picker, as the user does."""
    combo = page.export_column.combo
    combo.setCurrentIndex(combo.findData(str(path)))
    combo.activated.emit(combo.currentIndex())


def export_loaded(page) -> bool:
    return page.controller.export is not None and page.send_button.isEnabled()


def test_an_exported_gguf_answers_beside_the_fine_tune(qtbot, home, make_page):
    make_run(home, "alpha")
    make_run(home, "beta", age_s=100)
    gguf = make_export(home, "alpha", "q4_k_m", age_s=10)
    make_export(home, "alpha", "q8_0", passed=False, suffix=".failed", age_s=20)
    make_export(home, "beta", "f16")  # newer, but another run's: after alpha's
    make_export(home, "alpha", "f16", suffix=".partial")  # still being written
    make_export(home, "alpha", "q2_k", suffix=".old-1")  # set aside while a newer export took its name
    page = make_page()
    load(qtbot, page)
    combo = page.export_column.combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "No export", "alpha-q4_k_m.gguf", "alpha-q8_0.gguf (did not pass verification)", "beta-f16.gguf"]
    choose_export(page, gguf)
    qtbot.waitUntil(lambda: export_loaded(page), timeout=10_000)
    assert page.sent[-1] == protocol.LoadExport(str(gguf))
    pane = page.export_column.pane
    assert pane.isVisibleTo(page) and pane.title.text() == "Export (Q4_K_M): alpha-q4_k_m.gguf"
    assert [page.splitter.widget(i) for i in (1, 2, 3)] == [page.left_pane, pane, page.right_pane]
    page.compare_box.setChecked(True)
    say(qtbot, page, "hello")
    say(qtbot, page, "again")
    assert [c.adapter for c in chats(page)] == ["on", "export", "off"] * 2
    assert chats(page)[-2].messages == [  # the export's own side of the conversation
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "[export] You said: hello"},
        {"role": "user", "content": "again"}]
    assert pane.transcript.toPlainText().endswith("You: again\nExport: [export] You said: again")
    assert "[on] You said: again" in page.left_pane.transcript.toPlainText()
    combo.setCurrentIndex(0)  # "No export" frees it in the engine, and the column goes
    combo.activated.emit(0)
    assert page.sent[-1] == protocol.UnloadExport() and not pane.isVisibleTo(page)
    say(qtbot, page, "bye")
    assert [c.adapter for c in chats(page)[-2:]] == ["on", "off"]


def test_an_export_loads_without_holding_up_the_window(qtbot, home, make_page):
    make_run(home, "alpha")
    gguf = make_export(home, "alpha", "q4_k_m")
    page = make_page(FAKE + ["--load-delay", "1.5"])  # an engine that takes its time with a large file
    load(qtbot, page)
    started = time.monotonic()
    choose_export(page, gguf)
    assert time.monotonic() - started < 0.5, "the window hands the file to the engine and carries on"
    assert page.status_label.text() == "Loading alpha-q4_k_m.gguf in llama.cpp…"
    assert page.export_column.pane.title.text() == "Export: alpha-q4_k_m.gguf (loading…)"
    assert not page.send_button.isEnabled() and not page.export_column.combo.isEnabled()
    qtbot.waitUntil(lambda: export_loaded(page), timeout=10_000)
    assert time.monotonic() - started >= 1.5


def test_an_export_that_cannot_be_loaded_says_why(qtbot, page, tmp_path):
    load(qtbot, page)
    notes = tmp_path / "notes.gguf"
    notes.write_text("meeting notes, not a model")
    for path, why in ((notes, "notes.gguf is not a GGUF file\nHint: choose the .gguf file of an export"),
                      (tmp_path / "gone.gguf", f"there is no file at {tmp_path / 'gone.gguf'}\nHint: ")):
        assert page.export_column.load(str(path))
        qtbot.waitUntil(page.send_button.isEnabled, timeout=10_000)
        assert page.error_label.isVisibleTo(page)
        assert page.error_label.text().startswith(f"The exported model could not be loaded: {why}")
        assert page.controller.export is None and not page.export_column.pane.isVisibleTo(page)
        assert page.export_column.combo.currentText() == "No export"
    say(qtbot, page, "still here")  # the chat goes on without the export
    assert [c.adapter for c in chats(page)] == ["on"] and not page.error_label.isVisibleTo(page)


def test_another_gguf_file_is_chosen_in_a_dialog_that_starts_among_the_runs_exports(qtbot, home, make_page,
                                                                                  tmp_path, monkeypatch):
    make_run(home, "alpha")
    exported = make_export(home, "alpha", "q4_k_m")
    elsewhere = tmp_path / "downloads" / "mine-q8_0.gguf"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"GGUF" + bytes(60))
    asked = []

    class Dialog:  # the system's file dialog, answered as a user would
        @staticmethod
        def getOpenFileName(parent, caption, folder, filters):  # noqa: N802 - Qt's name
            asked.append((caption, folder, filters))
            return str(elsewhere), filters

    monkeypatch.setattr(export_column, "QFileDialog", Dialog)
    page = make_page()
    assert not page.export_column.browse_button.isEnabled()  # nothing to load it into yet
    load(qtbot, page)
    page.export_column.browse_button.click()
    assert asked == [("Choose an exported GGUF file", str(exported.parent), "GGUF files (*.gguf);;All files (*)")]
    qtbot.waitUntil(lambda: export_loaded(page), timeout=10_000)
    assert page.export_column.combo.currentText() == "mine-q8_0.gguf"
    assert page.export_column.pane.title.text() == "Export (Q8_0): mine-q8_0.gguf"
