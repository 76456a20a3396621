"""What the Chat page says before anything is loaded, and Copy buttons that are usable only with something to copy;
the before/after table's rows, which keep the height of their answers."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication

from tests.test_gui_chat_page import make_page, make_run  # noqa: F401 - make_page is a fixture


def test_before_loading_the_page_says_what_to_do_with_the_newest_run_chosen(qtbot, home, make_page):
    make_run(home, "older", age_s=100)
    make_run(home, "newest")
    page = make_page()
    assert page.source_combo.currentData() == "run:newest"
    assert page.status_label.text() == "Choose a run and press Load to chat with it."
    assert "No model loaded" not in page.status_label.text()
    page.load_button.click()
    qtbot.waitUntil(page.send_button.isEnabled, timeout=10_000)
    assert page.status_label.text().startswith("Ready: newest")
    page.refresh()  # once something was loaded, the page reports the engine, not the hint
    assert page.status_label.text().startswith("Ready: newest")


def test_without_a_run_the_page_offers_the_base_model(home, make_page):
    page = make_page()
    assert page.source_combo.currentData() == "model:demo"
    assert page.status_label.text() == "No fine-tuned run yet: press Load to chat with the base model alone."


def test_copy_buttons_wait_for_text(qtbot, home, make_page):
    make_run(home, "alpha")
    page = make_page()
    pane = page.left_pane
    assert not pane.copy_button.isEnabled(), "nothing to copy yet"
    pane.transcript.add_user("Who keeps the light?")
    assert not pane.copy_button.isEnabled(), "a question is not a reply"
    pane.transcript.begin_reply()
    reply = pane.transcript.messages()[-1]
    assert not reply.copy_button.isEnabled(), "a reply waiting for its first token"
    pane.transcript.append_reply("Orla ")
    assert reply.copy_button.isEnabled()
    pane.transcript.append_reply("Penhallow.")
    pane.transcript.finish_reply("end", 3, 1.0)
    assert pane.copy_button.isEnabled()
    pane.copy_button.click()
    assert QGuiApplication.clipboard().text() == "Orla Penhallow."
    pane.transcript.clear_conversation()
    assert not pane.copy_button.isEnabled()
    pane.transcript.add_user("again?")
    pane.transcript.begin_reply()
    pane.transcript.finish_reply("cancelled")  # stopped before its first token: an empty reply
    assert not pane.copy_button.isEnabled()


def test_a_long_pane_title_is_cut_in_the_middle_with_the_whole_of_it_in_the_tooltip(qtbot, home, make_page):
    name = "harbor-lights-rank-64-cutoff-2048-cosine-with-restarts-attempt-7"
    make_run(home, name)
    page = make_page()
    page.resize(900, 600)
    page.show()
    qtbot.waitExposed(page)
    page.compare_box.setEnabled(True)
    page.api_box.setChecked(True)  # three panes share the width
    title = page.left_pane.title
    qtbot.waitUntil(title.is_cut, timeout=2_000)
    assert title.toolTip() == f"Fine-tuned: {name}"
    metrics = title.fontMetrics()
    shown = metrics.elidedText(title.text(), title._mode, title.contentsRect().width())
    assert shown.startswith("Fine-tune") and shown.endswith("attempt-7") and "…" in shown


def test_before_after_rows_keep_the_height_of_their_answers(qtbot):
    from gui.widgets.comparison_view import ComparisonView

    answer = "The Festival of Vanishing Lanterns is held on the first new moon of autumn on Harbor Lights. " * 3
    view = ComparisonView()
    qtbot.addWidget(view)
    view.resize(1200, 600)
    view.show()
    qtbot.waitExposed(view)
    view.show_result({"before": {"loss": 2.0}, "after": {"loss": 0.5}, "answers": [
        {"question": "Which festival?", "reference": answer, "before": answer, "after": answer}]})
    table = view.table
    for width in (1200, 600, 420):  # narrower columns: more lines, a taller row
        view.resize(width, 600)
        qtbot.wait(20)
        rect = table.visualRect(table.model().index(0, 2))
        need = table.fontMetrics().boundingRect(0, 0, rect.width() - 8, 100_000, 0x1000, table.item(0, 2).text())
        assert table.rowHeight(0) >= need.height(), f"row clipped at {width}: {table.rowHeight(0)} < {need.height()}"
        assert table.item(0, 2).toolTip() == table.item(0, 2).text()


def test_an_empty_state_shows_every_line_of_its_note(qtbot):
    from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget

    from gui.widgets.empty_state import NOTE_WIDTH, empty_state

    note = ("Fine-tune a model on the Train page. Runs started from the command line (llamadesk-engine train) "
            "appear here too, and so do runs copied here from another computer.")
    window = QWidget()
    qtbot.addWidget(window)
    QVBoxLayout(window).addWidget(empty_state("No runs yet", note, [QPushButton("Go to Train")]))
    for width in (1400, 700, 300):
        window.resize(width, 500)
        window.show()
        qtbot.waitExposed(window)
        qtbot.wait(10)
        label = next(w for w in window.findChildren(QWidget) if getattr(w, "text", lambda: "")() == note)
        assert label.width() <= NOTE_WIDTH
        assert label.height() >= label.heightForWidth(label.width()) > label.fontMetrics().height(), width
