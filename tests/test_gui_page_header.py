"""The guide's next-step line in each page's header: the page below it stays where it is while the line appears,
changes (short, long, with and without a button) and goes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings

from gui.app_state import AppState

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]
LONG = ("Your fine-tune harbor-lights-rank-64-cutoff-2048-cosine-with-restarts-second-attempt is ready: talk to it, "
        "beside the base model, and compare the answers to the reference answers of the validation split. ") * 2


def _noop() -> None:
    pass


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_page_below_the_guide_never_moves(qtbot, home, tmp_path, size):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    from gui.main_window import PAGES, MainWindow

    window = MainWindow(AppState(str(home)), engine_command=FAKE)
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window._guide_timer.stop()
    steps = [("", "", None), ("Next: choose a dataset", "Go to Dataset", _noop), ("", "", None),
             ("Training (step 3 of 60, loss 1.2).", "", None), (LONG, "Chat with it", _noop),
             ("Next: " + LONG, "Go to Chat", _noop), ("Check the dataset", "Check", None), ("", "", None)]
    cut = 0
    for name, page in zip(PAGES, window._pages()):
        window.show_page(name)
        header = window.headers[name]
        places = set()
        for text, button, action in steps:
            header.set_next(text, button, action)
            qtbot.wait(10)
            places.add((page.mapTo(window, QPoint(0, 0)).y(), page.height()))
            if text:
                label = header.next_label
                assert label.isVisible() and label.height() >= label.fontMetrics().height()
                assert (label.toolTip() == text) == label.is_cut(), "a cut step says the whole of it in its tooltip"
                cut += label.is_cut()
        assert len(places) == 1, f"{name}: the page moved or changed height with the guide's line: {sorted(places)}"
    assert cut, "a long step is cut, so its tooltip was checked above"
