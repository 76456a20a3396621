"""The Data page and its pieces: DataCheckJob, the lazy RecordsModel and DatasetPage.

UI logic is driven by tests/fake_data_check.py (a fast stand-in that computes its answer from the file); one test
runs the real engine on the bundled sample.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QTableView

import resources
from engine.light import config as run_config
from gui import theme
from gui.app_state import AppState
from gui.data_check_job import DataCheckJob
from gui.pages.dataset_page import DatasetPage
from gui.widgets.records_model import RecordsModel

FAKE = [sys.executable, str(Path(__file__).with_name("fake_data_check.py"))]
HTML = "<b>x</b><script>alert(1)</script>"


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _rows(n: int, missing_output: tuple[int, ...] = ()) -> list[dict]:
    return [{"instruction": f"q{i}"} if i in missing_output else {"instruction": f"q{i}", "output": f"a{i}"}
            for i in range(1, n + 1)]


def _page(qtbot, home, command=FAKE, state: AppState | None = None) -> DatasetPage:
    page = DatasetPage(state or AppState(home=str(home)), engine_command=command)
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    return page


def _check(qtbot, page: DatasetPage, path) -> dict:
    with qtbot.waitSignal(page.sig_checked, timeout=20_000) as done:
        page.open_path(path)
    return done.args[0]


def _fail(qtbot, page: DatasetPage, path) -> str:
    with qtbot.waitSignal(page.job.sig_failed, timeout=20_000) as failed:
        page.open_path(path)
    return failed.args[0]


def _highlighted_text(page: DatasetPage) -> tuple[str, str]:
    """(trained, untrained) text of the rendered preview, told apart by the fragments' background."""
    trained, untrained = [], []
    block = page.preview.document().begin()
    while block.isValid():
        for it in block:
            fragment = it.fragment()
            fmt = fragment.charFormat()
            marked = fmt.hasProperty(fmt.Property.BackgroundBrush) and fmt.background().color() == QColor(theme.colors().trained)
            (trained if marked else untrained).append(fragment.text())
        block = block.next()
    return "".join(trained), "".join(untrained)


def test_check_shows_detection_and_summary_and_sets_the_dataset(qtbot, home, tmp_path):
    path = _write_jsonl(tmp_path / "ten.jsonl", _rows(10))
    page = _page(qtbot, home)
    with qtbot.waitSignal(page.state.sig_dataset_changed, timeout=20_000):
        _check(qtbot, page, path)
    detection = page.detection_label.text()
    assert detection.startswith("Format: Instructions (alpaca) — ") and "'instruction'" in detection
    assert "10 rows read · 10 usable · 0 skipped" in page.summary_label.text()
    assert page.state.config.dataset == str(path)
    assert not page.message.isVisible()
    assert page.records.rowCount() == 10 and page.records.record(0) == {"instruction": "q1", "output": "a1"}


def test_problems_are_listed_and_activating_one_selects_its_row(qtbot, home, tmp_path):
    path = _write_jsonl(tmp_path / "gaps.jsonl", _rows(30, missing_output=(7, 20)))
    page = _page(qtbot, home)
    _check(qtbot, page, path)
    table = page.problems
    assert table.rowCount() == 2 and page.tabs.tabText(0) == "Problems (2)"
    assert [table.item(1, c).text() for c in range(5)] == ["error", "20", "20", "output", "the field is missing"]
    table.setCurrentCell(1, 0)
    with qtbot.waitSignal(page.sig_jump_to_row, timeout=5_000) as jump:
        qtbot.keyClick(table, Qt.Key.Key_Return)  # activation; a double-click takes the same path
    assert jump.args == [20]
    selected = page.data_table.selectionModel().selectedRows()
    assert [index.row() for index in selected] == [19]
    assert page.records.record(19) == {"instruction": "q20"}
    assert "28 usable · 2 skipped" in page.summary_label.text()


def test_preview_highlights_trained_spans_and_shows_html_as_text(qtbot, home, tmp_path):
    records = [{"instruction": HTML, "output": "plain <i>answer</i>"}, {"instruction": "two", "output": "second"}]
    path = _write_jsonl(tmp_path / "html.jsonl", records)
    page = _page(qtbot, home)
    _check(qtbot, page, path)
    trained, untrained = _highlighted_text(page)
    assert trained == "plain <i>answer</i><|end|>second<|end|>"
    assert HTML in untrained and "<|assistant|>" in untrained and "answer" not in untrained
    assert HTML in page.preview.toPlainText()
    assert page.records.data(page.records.index(0, 0)) == HTML  # the raw table shows it literally too


def test_histogram_has_the_cutoff_line_and_the_truncated_share(qtbot, home, tmp_path):
    records = [{"instruction": "word " * n, "output": "end"} for n in (2, 4, 30)]
    path = _write_jsonl(tmp_path / "lengths.jsonl", records)
    state = AppState(home=str(home))
    state.set_config(dataclasses.replace(state.config, data=dataclasses.replace(state.config.data, cutoff=16)))
    page = _page(qtbot, home, state=state)
    _check(qtbot, page, path)
    items = page.histogram.plot.getPlotItem().items
    assert page.cutoff_line in items and page.cutoff_line.value() == 16 and page.cutoff_line.angle == 90
    assert page.cutoff_line.label.toPlainText() == "cutoff 16 · 33.3% cut"
    assert page.histogram_bars in items and sum(page.histogram_bars.opts["height"]) == 3
    assert page.truncated_label.text().startswith("33.3% of the rows (1) are longer than the cutoff of 16")


@pytest.mark.parametrize("name, content, expected", [
    ("missing.jsonl", None, ["no such file or folder", "→ check the path"]),
    ("broken.json", '[{"instruction": "a",}]', ["not valid JSON at line 1", "→ fix the file"]),
])
def test_errors_show_the_message_and_hint(qtbot, home, tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    page = _page(qtbot, home)
    text = _fail(qtbot, page, path)
    assert all(part in text for part in expected)
    assert page.message.isVisible() and page.message.text() == text
    assert page.state.config.dataset == "" and page.detection_label.text() == ""


def test_zero_usable_rows_is_an_error_with_the_problems_listed(qtbot, home, tmp_path):
    path = _write_jsonl(tmp_path / "none.jsonl", _rows(3, missing_output=(1, 2, 3)))
    page = _page(qtbot, home)
    _check(qtbot, page, path)
    assert page.message.isVisible() and page.message.text().startswith("No usable rows")
    assert "→ fix the problems" in page.message.text()
    assert page.problems.rowCount() == 3 and page.state.config.dataset == ""


def test_an_engine_that_crashes_or_cannot_start_is_reported(qtbot, home, tmp_path):
    path = _write_jsonl(tmp_path / "ok.jsonl", _rows(2))
    assert "simulated crash" in _fail(qtbot, _page(qtbot, home, FAKE + ["--crash"]), path)
    assert "could not start the engine" in _fail(qtbot, _page(qtbot, home, ["/nonexistent/engine"]), path)


def test_format_override_and_column_mapping_reach_the_engine(qtbot, home, tmp_path):
    path = _write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    page = _page(qtbot, home)
    _fail(qtbot, page, path)
    page.set_columns("alpaca", {"instruction": "question", "output": "answer"})
    with qtbot.waitSignal(page.sig_checked, timeout=20_000) as done:
        page.run_check()
    result = done.args[0]
    assert result["detection"]["reason"] == "chosen by you (alpaca)"
    assert result["detection"]["mapping"] == {"instruction": "question", "output": "answer"}
    # They are run settings: a run started now reads the file the way the check did.
    assert page.state.config.data.format == "alpaca"
    assert page.state.config.data.columns == {"instruction": "question", "output": "answer"}


def test_a_new_check_cancels_the_previous_one_and_cancel_is_silent(qtbot, home, tmp_path):
    first, second = _write_jsonl(tmp_path / "1.jsonl", _rows(1)), _write_jsonl(tmp_path / "2.jsonl", _rows(2))
    job = DataCheckJob(command=FAKE + ["--delay", "0.4"])
    done, failed = [], []
    job.sig_done.connect(done.append)
    job.sig_failed.connect(failed.append)
    config = run_config.RunConfig()
    with qtbot.waitSignal(job.sig_done, timeout=10_000):
        job.start(config.with_values({"dataset": str(first)}))
        job.start(config.with_values({"dataset": str(second)}))
    job.start(config.with_values({"dataset": str(first)}))
    job.cancel()
    qtbot.wait(800)  # long enough for either cancelled check to have answered
    assert [d["source"] for d in done] == [str(second)] and failed == [] and not job.is_running()


@pytest.fixture(scope="module")
def million_rows(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "million.jsonl"
    path.write_text("".join(f'{{"instruction": "question {i}", "output": "answer {i}"}}\n'
                            for i in range(1, 1_000_001)), encoding="utf-8")
    return path


def test_records_model_indexes_a_million_rows_lazily(qtbot, million_rows):
    model = RecordsModel(million_rows)
    first = model.rowCount()
    assert 0 < first < 1_000_000 and model.canFetchMore()
    assert model.data(model.index(0, 1)) == "answer 1" and model.headerData(0, Qt.Orientation.Vertical) == "1"
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.show()
    view.scrollToBottom()  # the view asks for more rows when it reaches the end
    assert model.rowCount() > first
    assert model.ensure_row(999_999) and not model.canFetchMore() and model.rowCount() == 1_000_000
    assert model.data(model.index(999_999, 0)) == "question 1000000"


def test_page_shows_the_first_rows_of_a_million_at_once_and_jumps_far(qtbot, home, million_rows):
    page = _page(qtbot, home, FAKE + ["--delay", "30"])  # the check never answers during this test
    page.open_path(million_rows)
    model = page.data_table.model()
    assert 0 < model.rowCount() < 1_000_000 and model.data(model.index(0, 0)) == "question 1"
    page.select_data_row(900_000)
    assert [i.row() for i in page.data_table.selectionModel().selectedRows()] == [899_999]
    assert page.job.is_running()
    page.job.cancel()


def test_records_model_reads_csv_with_quoted_newlines_and_bad_json_lines(tmp_path):
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text('\ufeffinstruction,output\nq1,"two\nlines, ""quoted"""\n\nq2,<b>x</b>\n', encoding="utf-8")
    model = RecordsModel(csv_path)
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(2)] == ["instruction", "output"]
    assert model.record(0) == {"instruction": "q1", "output": 'two\nlines, "quoted"'}
    assert model.record(1) == {"instruction": "q2", "output": "<b>x</b>"} and model.rowCount() == 2
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text('{"a": 1}\n\nnot json\n{"a": [1, 2]}', encoding="utf-8")
    model = RecordsModel(jsonl)
    assert model.rowCount() == 3 and model.data(model.index(1, 0)).startswith("not valid JSON")
    assert model.data(model.index(2, 0)) == "[1, 2]"
    assert RecordsModel(tmp_path / "nothing.parquet").rowCount() == 0


def test_dropping_a_file_opens_and_checks_it(qtbot, home, tmp_path):
    path = _write_jsonl(tmp_path / "dropped.jsonl", _rows(3))
    page = _page(qtbot, home)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    page.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(page.sig_checked, timeout=20_000):
        page.dropEvent(drop)
    assert page.path == str(path) and page.state.config.dataset == str(path)
    text_only = QMimeData()
    text_only.setText("not a file")
    ignored = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, text_only, Qt.MouseButton.LeftButton,
                              Qt.KeyboardModifier.NoModifier)
    ignored.ignore()
    page.dragEnterEvent(ignored)
    assert not ignored.isAccepted()


def test_the_data_page_loads_no_ml_library():
    probe = ("import os, sys, json\nos.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
             "import gui.pages.dataset_page\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                           check=True).stdout.splitlines()[-1]))
    assert not loaded & {"torch", "transformers", "datasets", "peft", "bitsandbytes"}


@pytest.mark.slow
def test_real_engine_checks_the_bundled_sample(qtbot, demo_home):
    page = _page(qtbot, demo_home, [sys.executable, "-m", "engine"])
    sample = resources.path("sample/harbor_lights.json")
    with qtbot.waitSignal(page.sig_checked, timeout=120_000) as done:
        page.open_path(sample)
    report = done.args[0]["report"]
    assert report["rows_usable"] == report["rows_read"] == page.records.rowCount() > 100
    assert page.detection_label.text().startswith("Format: Instructions (alpaca)")
    trained, untrained = _highlighted_text(page)
    assert trained and "<|im_start|>assistant" in untrained and "<|im_start|>assistant" not in trained
    assert page.cutoff_line is not None and page.histogram_bars is not None
    assert page.state.config.dataset == str(sample)
