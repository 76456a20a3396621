"""The Train page says which settings are in use and where they came from: a preset, a loaded file, the defaults,
and whether the user changed them since."""

from __future__ import annotations

from engine.light import config as run_config
from gui.app_state import AppState
from gui.pages.train_page import TrainPage


def test_the_train_page_names_the_source_of_its_settings(qtbot, home, tmp_path, monkeypatch):
    page = TrainPage(AppState(str(home)))
    qtbot.addWidget(page)
    assert page.provenance.text() == "Settings: the defaults"
    page.preset.setCurrentText("Balanced")
    assert page.provenance.text() == "Settings: the Balanced preset"
    epochs = page.basic.widgets["train.epochs"]
    epochs.setValue(epochs.value() + 1)  # as the user edits a field
    assert page.provenance.text() == "Settings: the Balanced preset, with your changes"
    page.state.set_dataset(str(tmp_path / "other.jsonl"))  # the data is not a training setting
    assert page.provenance.text() == "Settings: the Balanced preset, with your changes"

    saved = tmp_path / "mine.yaml"
    run_config.save(run_config.RunConfig().with_values({"train.epochs": 7}), saved)
    from gui.widgets import file_dialogs

    monkeypatch.setattr(file_dialogs, "open_file", lambda *args: str(saved))
    page.load_settings()
    assert page.state.config.train.epochs == 7 and page.provenance.text() == "Settings: the file mine.yaml"
