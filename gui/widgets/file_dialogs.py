"""Open, save and folder dialogs. Where the desktop offers no native dialog (a bare X session, some Linux desktops)
Qt draws its own at a size that cuts the file list's columns; these open it at a size a person can read, with the
columns fitted, and start in the user's home folder rather than wherever the app was started from."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QHeaderView, QTreeView, QWidget

SIZE = (960, 600)


def open_file(parent: QWidget | None, title: str, start: str = "", filters: str = "") -> str:
    dialog = _dialog(parent, title, start, filters)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    return _run(dialog)


def save_file(parent: QWidget | None, title: str, start: str = "", filters: str = "") -> str:
    dialog = _dialog(parent, title, start, filters)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    return _run(dialog)


def choose_folder(parent: QWidget | None, title: str, start: str = "") -> str:
    dialog = _dialog(parent, title, start, "")
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    return _run(dialog)


def _dialog(parent: QWidget | None, title: str, start: str, filters: str) -> QFileDialog:
    start_at = Path(start) if start else Path.home()
    dialog = QFileDialog(parent, title, str(start_at if start_at.is_dir() else start_at.parent))
    if start and not Path(start).is_dir():
        dialog.selectFile(Path(start).name)
    if filters:
        dialog.setNameFilter(filters)
    return dialog


def _run(dialog: QFileDialog) -> str:
    if dialog.testOption(QFileDialog.Option.DontUseNativeDialog) or not _has_native_dialog():
        fit(dialog)
    chosen = dialog.selectedFiles() if dialog.exec() else []
    dialog.deleteLater()
    return chosen[0] if chosen else ""


def fit(dialog: QFileDialog) -> None:
    """Qt's own dialog at a readable size, the name column taking the room and the others their contents."""
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.resize(*SIZE)
    for view in dialog.findChildren(QTreeView):
        header = view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)


def _has_native_dialog() -> bool:
    """Whether the platform draws native file dialogs: Windows, macOS, and a Linux desktop with its theme."""
    return QGuiApplication.platformName() in ("windows", "cocoa") or bool(
        os.environ.get("QT_QPA_PLATFORMTHEME") or os.environ.get("XDG_CURRENT_DESKTOP"))
