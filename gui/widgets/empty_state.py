"""What an empty page shows: a title, a line on what belongs here, and the buttons that fill it, centred."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

NOTE_WIDTH = 520  # the note wraps at a readable width instead of shrinking to its longest word


class _Note(QLabel):
    """Wrapped, centred text whose height is asked for at the width it is given. A centred widget is placed at most
    as wide as its size hint, but its layout asks its height for the whole column's width: fewer lines than it then
    needs, and the last line is cut."""

    def __init__(self, text: str):
        super().__init__(text)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.setMaximumWidth(NOTE_WIDTH)

    def sizeHint(self) -> QSize:
        """As wide as the text, up to NOTE_WIDTH (a wrapped QLabel would guess a narrower, taller shape)."""
        margins = self.contentsMargins()
        flags = int(Qt.TextFlag.TextWordWrap) | int(Qt.AlignmentFlag.AlignHCenter)
        text = self.fontMetrics().boundingRect(0, 0, NOTE_WIDTH, 100_000, flags, self.text())
        width = min(self.maximumWidth(), text.width() + margins.left() + margins.right() + 1)
        return QSize(width, super().heightForWidth(width))

    def heightForWidth(self, width: int) -> int:
        placed = self.sizeHint().expandedTo(self.minimumSize()).boundedTo(self.maximumSize()).width()
        return super().heightForWidth(min(width, placed))


def empty_state(title: str, note: str, buttons: list[QPushButton]) -> QWidget:
    """The first button is the primary action."""
    panel = QWidget()
    column = QVBoxLayout(panel)
    column.addStretch(1)
    heading = _Note(title)  # wraps rather than being cut in a narrow window
    heading.setObjectName("emptyTitle")
    column.addWidget(heading, 0, Qt.AlignmentFlag.AlignHCenter)
    text = _Note(note)
    text.setObjectName("pagePurpose")
    column.addWidget(text, 0, Qt.AlignmentFlag.AlignHCenter)
    row = QHBoxLayout()
    row.addStretch(1)
    for index, button in enumerate(buttons):
        if index == 0:
            button.setObjectName("primary")
        row.addWidget(button)
    row.addStretch(1)
    column.addLayout(row)
    column.addStretch(2)
    return panel
