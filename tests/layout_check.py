"""Finds what a user would see as a broken layout in a shown window: a control squeezed below the size it needs (a
button whose text is cut, a spin box without room for its number), a control sticking out of its parent, and
controls drawn over each other."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QMenu,
    QScrollBar,
    QSplitterHandle,
    QStackedWidget,
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
        if isinstance(widget, QLabel) and not widget.wordWrap() and widget.text() and widget.pixmap().isNull():
            if widget.width() < widget.minimumSizeHint().width() - 1:
                found.append(f"cut text: {describe(widget)} is {widget.width()} wide, "
                             f"needs {widget.minimumSizeHint().width()}")
        parent = widget.parentWidget()
        if parent is not None and not _inside_scrolling(widget):
            if not QRect(0, 0, parent.width(), parent.height()).adjusted(-1, -1, 1, 1).contains(widget.geometry()):
                found.append(f"outside its parent: {describe(widget)} at {widget.geometry().getRect()} in "
                             f"{parent.width()}×{parent.height()}")
    found += _overlaps(widgets)
    return found


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
