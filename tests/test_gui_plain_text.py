"""Text from files, engines and models is shown as text: no label in the window may turn a dataset column, an engine
error or a run name that looks like markup into rich text (a link, a bold title)."""

from __future__ import annotations

import pytest

import json
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from engine.light import config as run_config
from engine.light import protocol
from gui.app_state import AppState

MARKUP = '<a href="x">y</a>'


def test_every_label_in_the_window_is_plain_text(qtbot, home, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    window = MainWindow(AppState(str(home)))
    qtbot.addWidget(window)
    labels = window.findChildren(QLabel)
    assert len(labels) > 40
    assert [label.text() for label in labels if label.textFormat() != Qt.TextFormat.PlainText] == []


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_a_column_named_like_a_link_stays_text_on_the_train_and_runs_pages(qtbot, home, tmp_path, tiny_model):
    from gui.pages.runs_page import RunsPage
    from gui.pages.train_page import TrainPage

    data = tmp_path / "odd.jsonl"
    data.write_text(json.dumps({MARKUP: "a question", "reply": "an answer"}) + "\n")
    state = AppState(str(home))
    state.set_config(run_config.from_mapping({"model": str(tiny_model), "dataset": str(data), "quantization": "none",
                                              "run_name": MARKUP.replace("/", "")}))
    page = TrainPage(state)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.controller.sig_message, timeout=120_000,
                          check_params_cb=lambda m: isinstance(m, protocol.Error)):
        page.start()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=60_000)
    assert MARKUP in page.status.text() and page.status.textFormat() == Qt.TextFormat.PlainText
    runs = RunsPage(state)
    qtbot.addWidget(runs)
    runs.table.selectRow(0)
    assert MARKUP in runs.detail.text() and runs.detail.textFormat() == Qt.TextFormat.PlainText


def test_a_failing_check_that_quotes_the_column_stays_text_on_the_dataset_page(qtbot, home, tmp_path):
    from gui.pages.dataset_page import DatasetPage

    data = tmp_path / "odd.jsonl"
    data.write_text(json.dumps({MARKUP: "a question"}) + "\n")
    fake = [sys.executable, str(Path(__file__).with_name("fake_data_check.py"))]
    page = DatasetPage(AppState(str(home)), engine_command=fake)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.job.sig_failed, timeout=30_000):
        page.open_path(data)
    assert MARKUP in page.message.text() and page.message.textFormat() == Qt.TextFormat.PlainText
