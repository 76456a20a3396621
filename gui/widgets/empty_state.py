"""What an empty page shows: a title, a line on what belongs here, and the buttons that fill it, centred."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from gui.widgets.labels import plain_label

NOTE_WIDTH = 520  # the note wraps at a readable width instead of shrinking to its longest word


def empty_state(title: str, note: str, buttons: list[QPushButton]) -> QWidget:
    """The first button is the primary action."""
    panel = QWidget()
    column = QVBoxLayout(panel)
    column.addStretch(1)
    heading = plain_label(title, wrap=False)
    heading.setObjectName("emptyTitle")
    column.addWidget(heading, 0, Qt.AlignmentFlag.AlignHCenter)
    text = plain_label(note)
    text.setObjectName("pagePurpose")
    text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
    text.setMinimumWidth(min(NOTE_WIDTH, text.fontMetrics().horizontalAdvance(note)))
    text.setMaximumWidth(NOTE_WIDTH)
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
