"""One dataset in use: a file that fails its check is shown with its problems but never replaces (or half-replaces)
the one training uses; columns LlamaDesk cannot recognise are mapped in the window; a restart restores what was in
use, with its format and columns, and the training settings with where they came from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from engine.light import config as run_config
from gui.app_state import AppState
from gui.pages.dataset_page import DatasetPage
from gui.widgets.column_picker import UNUSED

FAKE = [sys.executable, str(Path(__file__).with_name("fake_data_check.py"))]


def _page(qtbot, home) -> DatasetPage:
    page = DatasetPage(AppState(home=str(home)), engine_command=FAKE)
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    return page


def _good(path: Path, rows: int = 12) -> Path:
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(rows)))
    return path


def _open(qtbot, page: DatasetPage, path) -> dict:
    with qtbot.waitSignal(page.sig_checked, timeout=20_000) as done:
        page.open_path(path)
    return done.args[0]


def test_a_broken_file_is_shown_with_its_problem_and_training_keeps_the_dataset_in_use(qtbot, home, tmp_path):
    page = _page(qtbot, home)
    good = _good(tmp_path / "good.jsonl")
    _open(qtbot, page, good)
    assert page.state.config.dataset == str(good) and page.in_use_rows() == 12
    assert page.histogram_bars is not None
    assert not page.in_use_bar.isVisible()

    broken = tmp_path / "broken.json"
    broken.write_text('[{"instruction": , "output": "x"}]')
    answer = _open(qtbot, page, broken)
    assert answer["error"]["message"].startswith("not valid JSON at line 1, column 18")
    assert page.state.config.dataset == str(good)  # training still uses the good file
    assert page.in_use_bar.isVisible() and "Training uses good.jsonl (12 usable rows)" in page.in_use_note.text()
    # The problem is in the Problems tab too, and the raw table explains itself in words.
    assert page.problems.rowCount() == 1 and "not valid JSON" in page.problems.item(0, 4).text()
    assert page.tabs.tabText(0) == "Problems (1)"
    assert "not valid JSON (line 1, column 18)" in page.data_note.text()
    assert "Expecting value: line" not in page.data_note.text() + page.message.text()
    # Nothing of the previous file's check stays drawn.
    assert page.histogram_bars is None and page.summary_label.text() == ""
    facts = page.guide_facts()
    assert facts["dataset"] == str(good) and facts["dataset_rows"] == 12 and facts["dataset_problem"] == ""

    page.button_in_use.click()  # back to the dataset in use
    qtbot.waitUntil(lambda: page.result is not None and page.path == str(good), timeout=20_000)
    assert not page.in_use_bar.isVisible()


def test_with_no_dataset_in_use_a_broken_file_is_what_needs_fixing(qtbot, home, tmp_path):
    page = _page(qtbot, home)
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    _open(qtbot, page, broken)
    facts = page.guide_facts()
    assert page.state.config.dataset == "" and facts["dataset"] == str(broken)
    assert facts["dataset_problem"].startswith("not valid JSON") and not page.in_use_bar.isVisible()


def test_unknown_columns_are_mapped_with_a_picker_per_field(qtbot, home, tmp_path):
    page = _page(qtbot, home)
    table = tmp_path / "nocols.csv"
    table.write_text("question,reply,source\n" + "".join(f"q{i},a{i},web\n" for i in range(12)))
    _open(qtbot, page, table)
    assert page.picker.isVisible()
    assert "choose the format above and the column that holds each field" in page.message.text()
    assert "--columns" not in page.message.text() and "--format" not in page.message.text()
    page.set_columns("alpaca", {})
    combos = page.picker.combos
    assert list(combos) == ["instruction", "input", "output", "system", "history"]
    assert [combos["output"].itemText(i) for i in range(combos["output"].count())] == ["question", "reply", "source"]
    assert combos["input"].itemText(0) == UNUSED  # an optional field can be left out
    combos["instruction"].setCurrentText("question")
    combos["output"].setCurrentText("reply")
    with qtbot.waitSignal(page.sig_checked, timeout=20_000) as done:
        page.button_check.click()
    assert done.args[0]["detection"]["reason"] == "chosen by you (alpaca)"
    assert page.state.config.data.columns == {"instruction": "question", "output": "reply"}
    assert page.state.config.dataset == str(table)
    assert "Not used for training: the column source." in page.detection_label.text()  # dropped columns are named


def test_a_tiny_dataset_is_accepted_with_a_word_about_it(qtbot, home, tmp_path):
    page = _page(qtbot, home)
    _open(qtbot, page, _good(tmp_path / "two.jsonl", rows=2))
    assert page.state.config.dataset.endswith("two.jsonl")
    assert page.message.isVisible() and page.message.text().startswith("Only 2 usable rows")


def _window(home, tmp_path, qtbot):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.instance().setOrganizationName("LlamaDesk-tests")
    from gui.main_window import MainWindow

    window = MainWindow(AppState(str(home)), engine_command=FAKE)  # only the Dataset page runs the engine here
    qtbot.addWidget(window)
    return window


def test_a_restart_restores_the_dataset_its_columns_and_the_settings_with_their_source(qtbot, home, tmp_path):
    table = tmp_path / "mapped.csv"
    table.write_text("question,reply\n" + "".join(f"q{i},a{i}\n" for i in range(12)))
    window = _window(home, tmp_path, qtbot)
    window.state.set_config(run_config.RunConfig().with_values({"train.epochs": 5}), source="the Balanced preset")
    window.state.update({"train.learning_rate": 0.0005})
    assert window.state.settings_provenance() == "Settings: the Balanced preset, with your changes"
    page = window.dataset_page
    _open(qtbot, page, table)
    page.set_columns("alpaca", {"instruction": "question", "output": "reply"})
    with qtbot.waitSignal(page.sig_checked, timeout=20_000):
        page.run_check()
    assert window.state.config.dataset == str(table)
    window.close()

    again = _window(home, tmp_path, qtbot)
    config = again.state.config
    assert (config.dataset, config.data.format, config.data.columns) == \
        (str(table), "alpaca", {"instruction": "question", "output": "reply"})
    assert config.train.epochs == 5 and config.train.learning_rate == 0.0005
    assert again.state.settings_provenance() == \
        "Settings: the Balanced preset, with your changes (as you left them last time)"
    # The Dataset page shows and checks that file with that mapping: page, sidebar and Train page agree.
    qtbot.waitUntil(lambda: again.dataset_page.result is not None, timeout=20_000)
    assert again.dataset_page.path == str(table) and again.dataset_page.in_use_rows() == 12
    assert again.dataset_page.format_combo.currentData() == "alpaca"
    again.update_guide()
    assert again.sidebar.state("Dataset")[0] == "12 rows · mapped.csv"
