"""Where Qt draws its own file dialog, it opens at a readable size with the name column taking the room, and in the
user's home folder (not wherever the app was started from)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QHeaderView, QTreeView

from gui.widgets import file_dialogs


def _answer(choose: None, seen: list) -> None:
    """Cancels the dialog about to open, after noting how it looked."""
    def act() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):  # not open yet
            QTimer.singleShot(100, act)
            return
        header = dialog.findChild(QTreeView).header()
        seen.append((dialog.size().width(), dialog.directory().absolutePath(),
                     header.sectionResizeMode(0) == QHeaderView.ResizeMode.Stretch))
        dialog.reject()
    QTimer.singleShot(200, act)


def test_qt_s_own_dialog_is_readable_and_starts_at_home(qtbot, tmp_path):
    seen: list = []
    _answer(None, seen)
    assert file_dialogs.open_file(None, "Open a dataset") == ""
    assert seen == [(file_dialogs.SIZE[0], str(Path.home()), True)]

    _answer(None, seen)
    assert file_dialogs.save_file(None, "Save settings", str(tmp_path / "run.yaml"), "Run config (*.yaml)") == ""
    assert seen[-1] == (file_dialogs.SIZE[0], str(tmp_path), True)  # in the folder of the name proposed
