"""A read-only log that keeps one updating line per progress bar: a line that reports the progress of the same thing
as the line before it ("model.safetensors: 58%", "Converting … 12/272") replaces that line instead of adding one."""

from __future__ import annotations

import re

from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

# What a progress line says before its figure: "file: 58%", "Converting tensors...:  14%|█▍ | 39/272", "12/272".
_PROGRESS = re.compile(r"^(?P<what>.*?)[\s:|]*(\d+(\.\d+)?%|\d+\s*/\s*\d+)(?!.*[A-Za-z]{4,}\s+[A-Za-z]{4,}).*$")


def progress_key(line: str) -> str | None:
    """The thing a progress line is about (its text before the figure), or None for an ordinary line."""
    found = _PROGRESS.match(line.strip())
    return found.group("what").strip() if found and found.group("what").strip() else None


class LogView(QPlainTextEdit):
    def __init__(self, max_lines: int = 5000, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(max_lines)
        self.setAccessibleName("Log")
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self._last_key: str | None = None

    def add_line(self, line: str) -> None:
        key = progress_key(line)
        if key is not None and key == self._last_key and self.document().blockCount():
            cursor = QTextCursor(self.document().lastBlock())
            cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock)
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
            cursor.insertText(line)
        else:
            self.appendPlainText(line)
        self._last_key = key

    def clear(self) -> None:
        super().clear()
        self._last_key = None
