"""Labels that show text as text. A QLabel guesses rich text from anything that looks like markup, so a file name, a
dataset column, an engine message or a model's reply containing ``<a href=…>`` would render as a link; every label in
the window is made here, plain, instead."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFormLayout, QLabel, QSizePolicy, QWidget


def plain_label(text: str = "", *, wrap: bool = True, selectable: bool = False) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(wrap)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ElidedLabel(QLabel):
    """One line of plain text that gives up room instead of claiming it: a long run name or a progress message ends
    in "…" (the whole text in its tooltip) rather than widening the window past the screen. ``mode`` says where the
    text is cut: a run name is told apart by its end, so a title may cut in the middle."""

    def __init__(self, text: str = "", parent: QWidget | None = None, *,
                 mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._mode = mode
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self._update_tip()

    def is_cut(self) -> bool:
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()

    def _update_tip(self) -> None:
        self.setToolTip(self.text() if self.is_cut() else "")

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance("Wo…"), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_tip()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # the theme's style sheet can change the font after setText
            self._update_tip()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        shown = self.fontMetrics().elidedText(self.text(), self._mode, self.contentsRect().width())
        painter.drawText(self.contentsRect(), int(self.alignment()), shown)


def add_row(form: QFormLayout, label: str, widget: QWidget) -> None:
    """A form row whose label is plain text too (``addRow(str, …)`` would make an auto-format label). The label
    names the field for screen readers and is its buddy, so clicking it focuses the field."""
    text = plain_label(label, wrap=False)
    text.setBuddy(widget)
    if not widget.accessibleName():
        widget.setAccessibleName(label)
    form.addRow(text, widget)
