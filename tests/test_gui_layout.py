"""Every page at 1280×800 and 1920×1080, in the light and the dark palette, in each state a user meets (empty,
loading, running, comparing, finished, failed; the Train page's driven by the fake engine): no control squeezed below
the size it needs, no text cut without its whole in a tooltip, none outside its parent, none drawn over another, no
table scrolling inside a scrolling panel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

import resources
from gui import theme
from gui.app_state import AppState
from tests.layout_check import problems

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]
SIZES = ((1280, 800), (1920, 1080))


@pytest.fixture
def themed(monkeypatch):
    """Applies a palette to the shared application, and puts back the plain one afterwards for the other tests."""
    app = QApplication.instance()
    before = (app.style().name(), app.palette(), app.styleSheet())

    def use(name: str) -> None:
        monkeypatch.setenv(theme.ENV_THEME, name)
        theme._apply(app)

    yield use
    app.setStyle(before[0])
    app.setPalette(before[1])
    app.setStyleSheet(before[2])
    theme._current = theme.LIGHT


LONG = "harbor-lights-rank-64-cutoff-2048-cosine-with-restarts-second-attempt-after-the-out-of-memory-retry"


def finished_run(home: Path, name: str = "harbor-demo") -> None:
    folder = home / "runs" / name
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    (folder / "config.yaml").write_text("model: demo\ndataset: /data/harbor_lights.json\n")
    (folder / "events.jsonl").write_text(
        '{"type": "progress", "step": 60, "total_steps": 60, "epoch": 1.6, "loss": 0.41, "elapsed_s": 250}\n'
        '{"type": "state", "state": "finished"}\n')


def evaluated_run(home: Path, name: str) -> None:
    """A finished run with its before/after comparison: answers long enough to wrap, markup shown as written."""
    from engine.light.run_folder import RunFolder

    finished_run(home, name)
    answer = ("The Festival of Vanishing Lanterns is held on the first new moon of autumn, when every keeper on the "
              "island lights a paper lantern and lets the tide carry it past Maren Holt's lighthouse. ")
    RunFolder(home / "runs" / name).write_evaluation({
        "validation_rows": 15, "before": {"loss": 2.41, "perplexity": 11.13, "rouge_l": 0.18},
        "after": {"loss": 0.63, "perplexity": 1.88, "rouge_l": 0.71},
        "answers": [{"question": f"Which festival is held on Harbor Lights, and when? ({i})", "reference": answer,
                     "before": "<b>A keeper</b> " + answer * 2, "after": answer,
                     "rouge_l_before": 0.1, "rouge_l_after": 0.9} for i in range(6)]})


STATES = ("empty", "loading", "running", "comparing", "finished", "failed")
ENGINES = {"loading": ["--steps", "400", "--delay", "0.05"], "running": ["--steps", "400", "--delay", "0.05"],
           "finished": ["--steps", "4", "--delay", "0.01"], "failed": ["--steps", "2", "--fail"]}


def _fill_chat(chat) -> None:
    chat.right_pane.show()  # as when comparing with the base model
    for pane in (chat.left_pane, chat.right_pane):
        pane.transcript.add_user("Who keeps the lighthouse?")
        pane.transcript.begin_reply()
        pane.transcript.append_reply("Maren Holt keeps it. ```print('light')``` " + "firehose." * 60)
        pane.transcript.finish_reply("length", 256, 10.0)


def _bring_to(state: str, window, qtbot, home: Path) -> list:
    """Puts the window in ``state`` with the fake engine; returns the other windows the state opens (a dialog)."""
    train, chat, runs = window.train_page, window.chat_page, window.runs_page
    if state == "empty":
        return []
    if state in ("loading", "running", "finished", "failed"):
        sample = str(resources.path("sample/harbor_lights.json"))
        window.state.update({"dataset": sample})
        window.dataset_page.open_path(sample)  # still checking: loading
        chat.select_run(LONG)
        chat.load()
        if state in ("loading", "running"):
            train.start()
        else:
            with qtbot.waitSignal(train.controller.sig_ended, timeout=20_000):
                train.start()
        assert train.is_busy() or train.status.text().startswith(("Finished", "Failed")), train.status.text()
    if state == "running":
        qtbot.waitUntil(lambda: train.progress.value() >= 2 and chat.is_ready(), timeout=20_000)
        chat.status_label.setText("Loading weights: 58%|█████▊    | 158/272 [00:01<00:00, 150.44it/s] " * 3)
    elif state in ("finished", "failed"):
        assert train.status.text().startswith("Finished" if state == "finished" else "Failed"), train.status.text()
        qtbot.waitUntil(lambda: chat.is_ready() and window.dataset_page.body.currentIndex() == 1, timeout=10_000)
        _fill_chat(chat)
        if state == "failed":
            chat.controller.sig_error.emit("The chat engine stopped unexpectedly (exit code 1).\n" +
                                           "Traceback: RuntimeError: CUDA error: out of memory " * 6)
    if state == "comparing":
        chat.select_run(LONG)
        chat.compare_box.setEnabled(True)
        _fill_chat(chat)
        chat.api_box.setChecked(True)  # the API pane, not set up: it says how
        runs.refresh()
        runs.select(LONG)
        runs.table.selectAll()
        dialog = runs.compare()
        qtbot.addWidget(dialog)
        qtbot.waitExposed(dialog)
        runs.select(LONG)  # the page itself shows the run's before/after table
        return [dialog]
    return []


@pytest.mark.parametrize("palette", ["light", "dark"])
@pytest.mark.parametrize("state", STATES)
def test_every_page_lays_out_in_every_state_at_common_sizes(qtbot, home, tmp_path, themed, palette, state):
    themed(palette)
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.instance().setOrganizationName("LlamaDesk-tests")
    if state != "empty":
        finished_run(home)
        evaluated_run(home, LONG)  # long names must shorten, not widen the window
    from gui.main_window import PAGES, MainWindow

    window = MainWindow(AppState(str(home)), engine_command=FAKE + ENGINES.get(state, []))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    found = {}
    try:
        dialogs = _bring_to(state, window, qtbot, home)
        for width, height in SIZES:
            window.resize(width, height)
            for page in PAGES:
                window.show_page(page)
                qtbot.wait(30)  # let the layouts settle
                shown, need = window.current_page(), window.current_page().minimumSizeHint()
                over_x, over_y = window.width() - width, window.height() - height
                if need.width() > shown.width() - over_x or need.height() > shown.height() - over_y:
                    found.setdefault(f"too big: the page needs {need.toTuple()}, the window has room for "
                                     f"{(shown.width() - over_x, shown.height() - over_y)}",
                                     f"{page} at {width}×{height}")
                for problem in problems(window):
                    found.setdefault(problem, f"{page} at {width}×{height}")
        for dialog in dialogs:
            for problem in problems(dialog):
                found.setdefault(problem, type(dialog).__name__)
    finally:  # a window closed while training would ask what to do with the run
        if window.train_page.is_busy():
            with qtbot.waitSignal(window.train_page.controller.sig_ended, timeout=10_000):
                window.train_page.controller.kill()
    known = {p: where for p, where in found.items() if _known_elsewhere(p, where)}
    found = {p: where for p, where in found.items() if p not in known}
    assert not found, f"{state}: " + "\n".join(f"{where}: {problem}" for problem, where in found.items())


# Problems the check finds in pages this test's owners do not change, each to be fixed where it is and then removed
# from here. An entry is (page, a piece of the problem's text).
KNOWN_ELSEWHERE: list[tuple[str, str]] = []  # (page, a piece of the problem) to be fixed in that page's module


def _known_elsewhere(problem: str, where: str) -> bool:
    return any(where.startswith(page) and piece in problem for page, piece in KNOWN_ELSEWHERE)


def test_the_checker_sees_a_squeezed_button_a_cut_label_and_an_overlap(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    row = QHBoxLayout(window)
    squeezed = QPushButton("Start training with these settings")
    squeezed.setMaximumWidth(60)
    cut = QLabel("a label much longer than the room it is given")
    cut.setMaximumWidth(40)
    cut.setMinimumWidth(40)
    row.addWidget(squeezed)
    row.addWidget(cut)
    row.addWidget(QPushButton("OK"))
    window.show()
    qtbot.waitExposed(window)
    stray = QPushButton("drawn over", window)  # placed by hand, over the laid-out row
    stray.setGeometry(squeezed.geometry())
    stray.show()
    found = problems(window)
    assert any(p.startswith("squeezed:") and "Start training" in p for p in found), found
    assert any(p.startswith("overlap:") and "drawn over" in p for p in found), found
    assert any(p.startswith("cut text:") and "a label much" in p for p in found), found


def test_the_checker_sees_cut_lines_a_cut_cell_and_nested_scrolling(qtbot):
    from PySide6.QtWidgets import QScrollArea, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

    from gui.widgets.labels import ElidedLabel, plain_label

    window = QWidget()
    qtbot.addWidget(window)
    column = QVBoxLayout(window)
    short = plain_label("a wrapped label given one line of height for the several lines that its words need here")
    short.setFixedSize(120, 16)
    elided = ElidedLabel("a one-line label cut with an ellipsis, and a tooltip taken away")
    elided.setFixedWidth(60)
    table = QTableWidget(1, 2)
    table.setWordWrap(False)
    table.setItem(0, 0, QTableWidgetItem("a cell far longer than its column, cut with an ellipsis"))
    told = QTableWidgetItem("a cell far longer than its column, with the whole text in its tooltip")
    told.setToolTip(told.text())
    table.setItem(0, 1, told)
    table.setColumnWidth(0, 60)
    table.setColumnWidth(1, 60)
    inner = QTableWidget(40, 1)
    inner.setMinimumHeight(120)
    inner.setMaximumHeight(120)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    content = QWidget()
    QVBoxLayout(content).addWidget(inner)
    scroll.setWidget(content)
    for widget in (short, elided, table, scroll):
        column.addWidget(widget)
    window.resize(500, 600)
    window.show()
    qtbot.waitExposed(window)
    elided.setToolTip("")
    found = problems(window)
    assert any(p.startswith("cut lines:") and "a wrapped label" in p for p in found), found
    assert any(p.startswith("cut without a tooltip:") and "a one-line label" in p for p in found), found
    cells = [p for p in found if p.startswith("cut cell without a tooltip:")]
    assert len(cells) == 1 and "its column, cut" in cells[0], found  # the one with a tooltip is fine
    assert any(p.startswith("scrolls inside a scrolling panel:") for p in found), found
    elided.setText(elided.text())  # the label itself keeps its tooltip with its text
    assert not any(p.startswith("cut without a tooltip:") for p in problems(window))


def test_every_control_has_a_name_for_screen_readers(qtbot, home, tmp_path):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    from gui.main_window import MainWindow
    from tests.layout_check import unnamed_controls

    finished_run(home)
    window = MainWindow(AppState(str(home)), engine_command=FAKE)
    qtbot.addWidget(window)
    unnamed = unnamed_controls(window)
    assert not unnamed, "\n".join(unnamed)
