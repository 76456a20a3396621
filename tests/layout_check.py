"""Finds what a user would see as a broken layout in a shown window: a control squeezed below the size it needs (a
button whose text is cut, a spin box without room for its number), text cut off (a one-line label too narrow, a
wrapped label or empty state too short for its lines, a "…" label or table cell that
does not carry its whole text in a tooltip), a control sticking out of its parent, controls drawn over each other,
and a table that scrolls inside a scrolling panel."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QMenu,
    QScrollArea,
    QScrollBar,
    QSplitterHandle,
    QStackedWidget,
    QStyle,
    QTableView,
    QTabBar,
    QWidget,
)

# Controls that must get at least their minimum size: below it their text or their number is cut.
CONTROLS = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit)


def describe(widget: QWidget) -> str:
    text = ""
    if isinstance(widget, (QAbstractButton, QLabel)):
        text = widget.text()[:40]
    chain, parent = [], widget.parentWidget()
    while parent is not None and len(chain) < 3:
        chain.append(parent.objectName() or type(parent).__name__)
        parent = parent.parentWidget()
    name = widget.objectName() or type(widget).__name__
    return f"{name} {text!r} in {' < '.join(chain)}"


def _shown(widget: QWidget) -> bool:
    return widget.isVisible() and widget.width() > 0 and widget.height() > 0


def _inside_scrolling(widget: QWidget) -> bool:
    """Content of a scroll area may extend past the visible part: that is what scrolling is for."""
    return _inside(widget, (QAbstractScrollArea,))


def problems(window: QWidget) -> list[str]:
    found = []
    widgets = [w for w in window.findChildren(QWidget) if _shown(w) and not w.isWindow() and not isinstance(w, QMenu)]
    for widget in widgets:
        internal = isinstance(widget.parentWidget(), (QTabBar, QAbstractSpinBox, QComboBox))  # a control's own parts
        if isinstance(widget, CONTROLS) and not internal:
            need = widget.minimumSizeHint()
            if widget.width() < need.width() - 1 or widget.height() < need.height() - 1:
                found.append(f"squeezed: {describe(widget)} is {widget.width()}×{widget.height()}, "
                             f"needs {need.width()}×{need.height()}")
        if isinstance(widget, QLabel) and widget.text() and widget.pixmap().isNull():
            found += _cut_label(widget)
        if isinstance(widget, QTableView):
            found += _cut_cells(widget)
        if isinstance(widget, QAbstractItemView) and _scrolls_inside_scrolling(widget):
            found.append(f"scrolls inside a scrolling panel: {describe(widget)}")
        parent = widget.parentWidget()
        if parent is not None and not _inside_scrolling(widget):
            if not QRect(0, 0, parent.width(), parent.height()).adjusted(-1, -1, 1, 1).contains(widget.geometry()):
                found.append(f"outside its parent: {describe(widget)} at {widget.geometry().getRect()} in "
                             f"{parent.width()}×{parent.height()}")
    found += _overlaps(widgets)
    return found


def _cut_label(label: QLabel) -> list[str]:
    from gui.widgets.labels import ElidedLabel

    if isinstance(label, ElidedLabel):  # drawn with "…" by design: the tooltip must then hold the whole text
        if label.is_cut() and label.toolTip() != label.text():
            return [f"cut without a tooltip: {describe(label)} is {label.width()} wide"]
        return []
    if not label.wordWrap():
        if label.width() < label.minimumSizeHint().width() - 1:
            return [f"cut text: {describe(label)} is {label.width()} wide, needs {label.minimumSizeHint().width()}"]
        return []
    # A word longer than the line (a path) is broken anywhere by a wrapped QLabel: only the height can run short.
    if label.height() < label.heightForWidth(label.width()) - 1:
        return [f"cut lines: {describe(label)} is {label.width()}×{label.height()}, its lines need "
                f"{label.heightForWidth(label.width())}"]
    return []


def _cut_cells(table: QTableView) -> list[str]:
    """Cells in view whose text does not fit (Qt draws it with "…", or clips wrapped lines) and whose tooltip is not
    the whole text."""
    model, viewport = table.model(), table.viewport().rect()
    if model is None:
        return []
    pad = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1)
    found = []
    for row in range(model.rowCount()):
        if table.isRowHidden(row):
            continue
        for column in range(model.columnCount()):
            index = model.index(row, column)
            rect = table.visualRect(index)
            if table.isColumnHidden(column) or not rect.intersects(viewport) or rect.width() <= pad:
                continue
            text = str(model.data(index) or "")
            if not text or str(model.data(index, Qt.ItemDataRole.ToolTipRole) or "") == text:
                continue
            flags = int(Qt.TextFlag.TextWordWrap) if table.wordWrap() else 0
            need = table.fontMetrics().boundingRect(0, 0, rect.width() - pad, 1_000_000, flags, text)
            if need.width() > rect.width() - pad + 1 or need.height() > rect.height() + 1:
                found.append(f"cut cell without a tooltip: {text[:40]!r} at ({row}, {column}) is "
                             f"{rect.width()}×{rect.height()} in {describe(table)}")
        if len(found) >= 3:
            break  # a few name the problem: the rest of a long table repeats it
    return found


def _scrolls_inside_scrolling(view: QAbstractItemView) -> bool:
    """A list or table whose own scroll bar shows inside a scroll area: two scroll bars for one wheel."""
    if not view.verticalScrollBar().isVisible():
        return False
    parent = view.parentWidget()
    while parent is not None:
        if isinstance(parent, QScrollArea) and \
                parent.verticalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
            return True
        parent = parent.parentWidget()
    return False


def _overlaps(widgets: list[QWidget]) -> list[str]:
    found = []
    by_parent: dict[int, list[QWidget]] = {}
    for widget in widgets:
        parent = widget.parentWidget()
        if (parent is None or parent.layout() is None or isinstance(widget, (QScrollBar, QSplitterHandle))
                or isinstance(parent, (QStackedWidget, QAbstractScrollArea, QAbstractSpinBox, QComboBox))):
            continue  # placed by its parent itself (pages of a stack, a scroll area's viewport): not laid out
        by_parent.setdefault(id(parent), []).append(widget)
    for siblings in by_parent.values():
        for i, a in enumerate(siblings):
            for b in siblings[i + 1:]:
                overlap = a.geometry().intersected(b.geometry())
                if overlap.width() > 1 and overlap.height() > 1:
                    found.append(f"overlap: {describe(a)} and {describe(b)} share {overlap.getRect()}")
    return found


def unnamed_controls(window: QWidget) -> list[str]:
    """Controls a screen reader could not name: no accessible name, no text of their own, no label pointing at them."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QAbstractItemView, QPlainTextEdit, QTextEdit

    buddies = {id(label.buddy()) for label in window.findChildren(QLabel) if label.buddy() is not None}
    found = []
    kinds = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QPlainTextEdit, QTextEdit, QAbstractItemView)
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, kinds) or not widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            continue
        if _inside(widget, (QAbstractSpinBox, QComboBox)):
            continue  # a control's own parts (a combo's list, a spin box's field) carry its name
        own_text = widget.text() if isinstance(widget, QAbstractButton) else ""
        if not (widget.accessibleName() or own_text.strip() or id(widget) in buddies):
            found.append(describe(widget))
    return found


def _inside(widget: QWidget, kinds: tuple) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, kinds):
            return True
        parent = parent.parentWidget()
    return False
