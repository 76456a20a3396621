"""A new user's first hour, in the real window with the real engine: the first window → the sample → Start →
the comparison → Chat → Export (verified in llama.cpp) → a broken file → a CSV mapped in the window → quit and
start again. At each step the sidebar, the guide's banner, the page and the engine agree on the dataset, the run and
its state. The model is a tiny random-weight LLaMA with the demo model's real tokenizer (the demo model itself
takes minutes per step on a CPU); everything else is what a user runs."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

import resources
from engine.light import demo_settings
from engine.light.run_folder import RunFolder
from gui.app_state import AppState

pytestmark = pytest.mark.slow

ENGINE_MS = 180_000  # an engine start imports torch and transformers: seconds here, more on a loaded machine


def _window(home, settings):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(settings))
    QApplication.instance().setOrganizationName("LlamaDesk-journey")
    from gui.main_window import MainWindow

    window = MainWindow(AppState(str(home)))
    window.resize(1280, 800)
    window.show()
    window.update_guide()
    return window


def _sidebar(window, page: str) -> str:
    return window.sidebar.state(page)[0]


def _banner(window, page: str) -> tuple[str, str]:
    header = window.headers[page]
    return header.next_label.text(), header.next_button.text() if header.next_button.isVisible() else ""


def _agree_on_the_dataset(window, path, rows: int) -> None:
    """Sidebar, Dataset page, Train page's settings and the guide name the same file with the same rows."""
    window.update_guide()
    name = path.name if hasattr(path, "name") else str(path).rsplit("/", 1)[-1]
    assert window.state.config.dataset == str(path)
    assert _sidebar(window, "Dataset") == f"{rows:,} rows · {name}"
    assert window.dataset_page.in_use_rows() == rows


def test_the_first_hour(qtbot, home, tmp_path, decisive_tiny_model):
    settings = tmp_path / "settings"
    sample = resources.path(demo_settings.SAMPLE)
    window = _window(home, settings)
    qtbot.addWidget(window)

    # The first window: the demo model is chosen, no dataset yet; the banner offers the sample.
    assert _sidebar(window, "Dataset") == "not chosen" and _sidebar(window, "Runs") == "none yet"
    window.show_page("Dataset")
    assert _banner(window, "Dataset")[1] == "Use the sample"
    window.state.set_model(str(decisive_tiny_model))  # as "Local folder…" on the Model page does

    # The sample, from the banner's button: checked by the engine, then in use everywhere.
    with qtbot.waitSignal(window.dataset_page.sig_checked, timeout=ENGINE_MS) as checked:
        window.headers["Dataset"].next_button.click()
        window.update_guide()
        assert _sidebar(window, "Dataset") == f"checking · {sample.name}"
    rows = checked.args[0]["report"]["rows_usable"]
    assert rows > 100
    _agree_on_the_dataset(window, sample, rows)

    # Start: a short run with its comparison with the base model.
    window.state.update({"run_name": "journey", "quantization": "none", "train.max_steps": 3,
                         "train.compare_prompts": 2, "data.validation_share": 0.05})
    window.show_page("Train")
    assert _banner(window, "Train")[1] == "Start training"
    ended = []
    window.train_page.controller.sig_ended.connect(ended.append)
    states = []
    window.train_page.controller.sig_message.connect(
        lambda m: states.append(m.state) if type(m).__name__ == "State" else None)
    progress = []  # (text, Skip shown?) of each progress update: the comparison has its own, with Skip beside it
    window.train_page.controller.sig_progress.connect(
        lambda _v, _m, text: progress.append((text, window.train_page.skip_button.isVisible())))
    window.headers["Train"].next_button.click()
    qtbot.waitUntil(lambda: window.runs_page.table.rowCount() == 1, timeout=ENGINE_MS)  # without a Refresh
    qtbot.waitUntil(lambda: bool(ended), timeout=ENGINE_MS)
    assert not ended[0].crashed and ended[0].exit_code == 0, ended[0].output_tail
    assert "comparing" in states and states[-1] == "finished"
    assert any(text.startswith("Comparing with the base model") and skip for text, skip in progress), progress
    assert not window.train_page.skip_button.isVisible()
    assert "average training loss" in window.train_page.status.text()
    folder = RunFolder(home / "runs" / "journey")
    assert folder.has_adapter and folder.evaluation() is not None
    window.update_guide()
    assert _sidebar(window, "Train") == "finished: journey" and _sidebar(window, "Runs") == "1 run"
    assert _sidebar(window, "Chat") == "to try · journey"
    assert window.runs_page.table.item(0, 0).text() == "journey"

    # Chat with it, from the banner.
    window.show_page("Chat")
    assert _banner(window, "Chat")[1] == "Chat with it"
    window.headers["Chat"].next_button.click()
    chat = window.chat_page
    qtbot.waitUntil(chat.is_ready, timeout=ENGINE_MS)
    chat.sampling["max_new_tokens"].setValue(4)
    chat.sampling["temperature"].setValue(0.0)
    with qtbot.waitSignal(chat.client.sig_chat_done, timeout=ENGINE_MS):
        assert chat.send_message("Who keeps the lighthouse?")
    window.update_guide()
    assert _sidebar(window, "Chat") == "tried · journey"
    assert _banner(window, "Chat") == ("", "")  # the path is walked: no next step

    # Export to GGUF, verified in llama.cpp.
    dialog = window.export_run(folder.summary())
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("gguf"))
    dialog.quant_combo.setCurrentIndex(dialog.quant_combo.findData("f16"))
    with qtbot.waitSignal(dialog.job.sig_ended, timeout=ENGINE_MS):
        dialog.export_button.click()
    assert dialog.status_label.text().startswith("Done and verified"), dialog.report.toPlainText()
    dialog.close()

    # A broken file: shown with its problem; training keeps the sample, and every view says so.
    broken = tmp_path / "harbor.json"
    broken.write_text('[{"instruction": "Who keeps the light?", "output": }]', encoding="utf-8")
    window.show_page("Dataset")
    with qtbot.waitSignal(window.dataset_page.sig_checked, timeout=ENGINE_MS):
        window.dataset_page.open_path(broken)
    _agree_on_the_dataset(window, sample, rows)
    page = window.dataset_page
    assert page.in_use_bar.isVisible() and page.problems.rowCount() == 1
    assert "not valid JSON at line 1" in page.message.text() and "Expecting value" not in page.message.text()
    assert _banner(window, "Dataset") == ("", "")  # nothing to fix: the path was walked with the sample

    # A CSV with columns LlamaDesk does not know, mapped in the window.
    table = tmp_path / "keepers.csv"
    table.write_text("question,reply,source\n" + "".join(
        f"Who kept light {i}?,Keeper number {i} kept it.,log\n" for i in range(30)), encoding="utf-8")
    with qtbot.waitSignal(page.sig_checked, timeout=ENGINE_MS) as failed:
        page.open_path(table)
    assert "error" in failed.args[0] and page.picker.isVisible()
    page.set_columns("prompt_completion", {})
    page.picker.combos["prompt"].setCurrentText("question")
    page.picker.combos["completion"].setCurrentText("reply")
    with qtbot.waitSignal(page.sig_checked, timeout=ENGINE_MS) as passed:
        page.button_check.click()
    assert passed.args[0]["report"]["rows_usable"] == 30
    _agree_on_the_dataset(window, table, 30)
    assert "source" in page.detection_label.text()  # the column left out is named
    assert window.state.config.data.columns == {"prompt": "question", "completion": "reply"}

    # Quit and start again: the same dataset, mapping, settings and run, and the views agree.
    provenance = window.state.settings_provenance()
    window.close()
    again = _window(home, settings)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.dataset_page.result is not None, timeout=ENGINE_MS)
    _agree_on_the_dataset(again, table, 30)
    assert again.dataset_page.picker.combos["prompt"].currentText() == "question"
    assert again.state.config.train.max_steps == 3 and again.state.config.run_name == "journey"
    assert again.state.settings_provenance() == provenance + " (as you left them last time)"
    assert _sidebar(again, "Train") == "finished: journey" and again.runs_page.table.rowCount() == 1
    again.close()
