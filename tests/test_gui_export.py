"""The Export dialog, from the Runs and Chat pages, driving the real engine: choices, disk sizing, the folder's
contents, progress, cancel, the report, and failures shown as messages."""

from __future__ import annotations

import shutil
import sys
from collections import namedtuple

import pytest
import yaml

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.light import config as run_config
from engine.light.run_folder import RunFolder
from gui.app_state import AppState


@pytest.fixture
def finished_run(home, decisive_tiny_model, small_dataset):
    config = run_config.from_mapping({
        "model": str(decisive_tiny_model), "dataset": str(small_dataset), "run_name": "tuned", "quantization": "nf4",
        "data": {"validation_share": 0.1}, "train": {"max_steps": 4, "learning_rate": 5e-2}})
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    return RunFolder(home / "runs" / "tuned").summary()


def _dialog(qtbot, run, home, engine_command=None):
    from gui.export_dialog import ExportDialog

    dialog = ExportDialog(run, home=str(home), engine_command=engine_command)
    qtbot.addWidget(dialog)
    return dialog


def _type_folder(dialog, folder) -> None:
    dialog.folder_edit.setText(str(folder))
    dialog.folder_edit.textEdited.emit(str(folder))


def _export_adapter(run, folder) -> None:
    from engine.heavy.export import job
    from engine.light.export_options import ExportOptions

    assert job.run(run.folder, ExportOptions("adapter", out=folder), emitter=Emitter(None), control=Control(),
                   device="cpu") == 0


def test_the_dialog_offers_what_the_run_allows_and_sizes_the_export(qtbot, finished_run, home, monkeypatch):
    dialog = _dialog(qtbot, finished_run, home)
    options = dialog.options()
    assert (options.format, options.quant, options.merge_into) == ("gguf", "q4_k_m", "trained")
    assert options.out == home / "exports" / "tuned-gguf-q4_k_m"
    assert dialog.form.isRowVisible(dialog.quant_combo) and dialog.form.isRowVisible(dialog.merge_combo)
    assert not dialog.form.isRowVisible(dialog.system_edit)
    assert "Needs about" in dialog.disk_label.text() and dialog.export_button.isEnabled()

    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("ollama"))
    assert dialog.form.isRowVisible(dialog.system_edit) and dialog.options().out.name == "tuned-ollama-q4_k_m"
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("adapter"))
    assert not dialog.form.isRowVisible(dialog.quant_combo) and not dialog.form.isRowVisible(dialog.merge_combo)
    dialog.folder_edit.setText(str(home / "mine"))
    dialog.folder_edit.textEdited.emit(str(home / "mine"))
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("merged"))
    assert dialog.options().out == home / "mine", "a folder the user typed is kept"

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    dialog._update_disk()
    assert "1 MiB is free" in dialog.disk_label.text() and not dialog.export_button.isEnabled()


def test_an_export_from_the_runs_page_ends_with_the_verified_report(qtbot, finished_run, home):
    from gui.main_window import MainWindow

    window = MainWindow(AppState(str(home)))
    qtbot.addWidget(window)
    window.runs_page.refresh()
    window.runs_page.table.selectRow(0)
    assert window.runs_page.buttons["Export…"].isEnabled()
    window.runs_page.buttons["Export…"].click()
    dialog = window.export_run(finished_run)  # the same dialog comes back for the same run
    assert len([d for d in window.findChildren(type(dialog))]) == 1
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("adapter"))
    with qtbot.waitSignal(dialog.job.sig_ended, timeout=120_000):
        dialog.export_button.click()
        assert dialog.cancel_button.isVisible() and not dialog.format_combo.isEnabled()
    assert dialog.status_label.text().startswith("Done and verified"), dialog.status_label.text()
    assert "Verified: adapter export in" in dialog.report.toPlainText()
    assert "The adapter's files are copied as they were trained" in dialog.report.toPlainText()
    assert "The export you just made is there" in dialog.disk_label.text()
    assert "An earlier export" not in dialog.disk_label.text()
    assert dialog.open_button.isVisible() and dialog.export_button.isVisible()
    assert (home / "exports" / "tuned-adapter" / "adapter_config.json").is_file()


def test_the_chat_page_opens_the_export_of_the_run_it_shows(qtbot, finished_run, home):
    from gui.main_window import MainWindow

    window = MainWindow(AppState(str(home)))
    qtbot.addWidget(window)
    assert window.chat_page.select_run("tuned") and window.chat_page.export_button.isEnabled()
    window.chat_page.export_button.click()
    dialogs = window.findChildren(__import__("gui.export_dialog", fromlist=["ExportDialog"]).ExportDialog)
    assert [d.run.name for d in dialogs] == ["tuned"]
    window.chat_page.source_combo.setCurrentIndex(window.chat_page.source_combo.count() - 1)  # the base model
    assert not window.chat_page.export_button.isEnabled()


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_a_failing_export_shows_what_and_where(qtbot, finished_run, home):
    earlier = home / "exports" / "tuned-adapter"
    _export_adapter(finished_run, earlier)
    config = yaml.safe_load(finished_run.folder.config_file.read_text(encoding="utf-8"))
    config["model"] = str(home / "gone")
    finished_run.folder.config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    dialog = _dialog(qtbot, RunFolder(finished_run.folder.path).summary(), home)
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("adapter"))
    with qtbot.waitSignal(dialog.job.sig_ended, timeout=120_000):
        dialog.export_button.click()
    text = dialog.status_label.text()
    assert text.startswith("The export failed: ") and "the base model is not available" in text and "gone" in text
    assert text.endswith(f"\nYour earlier export at {earlier} is unchanged.")
    assert not dialog.report.toPlainText() and dialog.export_button.isEnabled()


@pytest.mark.slow
def test_a_gguf_export_shows_its_progress_and_can_be_cancelled(qtbot, finished_run, home):
    dialog = _dialog(qtbot, finished_run, home)
    stages = []
    dialog.job.sig_progress.connect(lambda msg: stages.append(msg.stage))
    with qtbot.waitSignal(dialog.job.sig_ended, timeout=240_000):
        dialog.export_button.click()
    assert stages.index("merging") < stages.index("converting") < len(stages) - 1
    assert dialog.progress.isHidden() and "Verified: gguf export" in dialog.report.toPlainText()
    assert "llama-cli -m" in dialog.report.toPlainText()

    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("ollama"))
    with qtbot.waitSignal(dialog.job.sig_ended, timeout=240_000):
        with qtbot.waitSignal(dialog.job.sig_progress, check_params_cb=lambda m: m.stage == "reference",
                              timeout=120_000):
            dialog.export_button.click()
        dialog.cancel_button.click()
    assert dialog.status_label.text() == "Cancelled: nothing was written."
    assert not (home / "exports" / "tuned-ollama-q4_k_m").exists()
    assert not (home / "exports" / "tuned-ollama-q4_k_m.partial").exists()


def test_a_folder_of_someone_elses_files_is_refused_before_the_export_starts(qtbot, finished_run, home, tmp_path):
    dialog = _dialog(qtbot, finished_run, home)
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("adapter"))
    models = tmp_path / "Models"
    (models / "old-model").mkdir(parents=True)
    (models / "notes.txt").write_text("mine\n", encoding="utf-8")
    _type_folder(dialog, models)
    assert dialog.disk_label.text() == (
        f"{models}: this folder holds files LlamaDesk did not write (notes.txt, old-model); an export is never "
        f"written over them.\nChoose an empty or new folder, or a sub-folder (for example {models / 'tuned-adapter'}).")
    assert not dialog.export_button.isEnabled()

    _type_folder(dialog, models / "tuned-adapter")
    assert dialog.export_button.isEnabled() and "earlier export" not in dialog.disk_label.text()
    _export_adapter(finished_run, models / "tuned-adapter")
    dialog._update_disk()
    assert "An earlier export is there: the new one replaces it only once it is verified." in dialog.disk_label.text()
    assert dialog.export_button.isEnabled()


@pytest.mark.slow
def test_a_failed_verification_says_where_the_files_are_and_that_the_earlier_export_is_unchanged(
        qtbot, finished_run, home):
    """The real engine, its merged weights damaged after saving (see tests/test_export_safety.py), over an
    earlier export."""
    from tests.test_export_safety import DAMAGED_MERGED_WEIGHTS

    folder = home / "exports" / "mine"
    _export_adapter(finished_run, folder)
    dialog = _dialog(qtbot, finished_run, home, engine_command=[sys.executable, "-c", DAMAGED_MERGED_WEIGHTS])
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("merged"))
    _type_folder(dialog, folder)
    with qtbot.waitSignal(dialog.job.sig_ended, timeout=180_000):
        dialog.export_button.click()
    assert dialog.status_label.text() == (
        f"Verification failed; the files are kept in {folder}.failed; your earlier export at {folder} is unchanged. "
        "The report below shows how its answers differ.")
    assert dialog.report.toPlainText().startswith("Verification failed; ") and "FAILS" in dialog.report.toPlainText()
    assert not dialog.open_button.isHidden() and dialog.copy_button.isHidden(), "no command to run a failed one"
    assert (folder / "adapter_config.json").is_file() and (folder.parent / "mine.failed" / "config.json").is_file()
