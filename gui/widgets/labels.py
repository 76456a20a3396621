"""Labels that show text as text. A QLabel guesses rich text from anything that looks like markup, so a file name, a
dataset column, an engine message or a model's reply containing ``<a href=…>`` would render as a link; every label in
the window is made here, plain, instead."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget


def plain_label(text: str = "", *, wrap: bool = True, selectable: bool = False) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(wrap)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def add_row(form: QFormLayout, label: str, widget: QWidget) -> None:
    """A form row whose label is plain text too (``addRow(str, …)`` would make an auto-format label)."""
    form.addRow(plain_label(label, wrap=False), widget)
