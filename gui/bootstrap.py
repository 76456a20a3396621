"""The QApplication and the main window, built the same way by ``llamadesk``, its self-test and the benches.

Pages are imported only when a window is built, so ``llamadesk --help`` answers instantly.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

# Fields whose value the mouse wheel changes. A scroll bar is not one: scrolling is what its wheel is for.
WHEEL_FIELDS = (QAbstractSpinBox, QComboBox, QAbstractSlider)


class WheelGuard(QObject):
    """The mouse wheel changes a field only once the field has focus (a click or Tab); over an unfocused field it
    scrolls the page, so scrolling down a form never edits the settings it passes.

    Installed on the application, it sees every widget: a field is given strong focus when it is polished (a wheel
    would otherwise give it focus first), and a wheel event over an unfocused field goes to the scroll area around
    the field instead (handed on directly: Qt passes an event a widget ignores to its parents only when it came from
    the window system)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.Wheel, QEvent.Type.Polish) or not _is_field(watched):
            return False
        if kind == QEvent.Type.Polish:
            if watched.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            return False
        if watched.hasFocus():
            return False
        area = _scroll_area(watched)
        if area is not None:
            viewport = area.viewport()
            inside = viewport.mapFrom(watched, event.position().toPoint())
            QApplication.sendEvent(viewport, QWheelEvent(
                inside, event.globalPosition(), event.pixelDelta(), event.angleDelta(), event.buttons(),
                event.modifiers(), event.phase(), event.inverted(), event.source()))
        event.accept()  # handled: the field itself never sees it
        return True


def _scroll_area(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    return parent


def _is_field(widget: QObject) -> bool:
    return isinstance(widget, WHEEL_FIELDS) and not isinstance(widget, QScrollBar) and isinstance(widget, QWidget)


def application() -> QApplication:
    """The app, themed, its reference cycles collected on this (the GUI) thread only."""
    existing = QApplication.instance()
    app = existing or QApplication(sys.argv[:1])
    app.setOrganizationName("LlamaDesk")
    app.setApplicationName("LlamaDesk")
    if existing is None or not getattr(app, "_llamadesk_set_up", False):
        from gui import cycle_collector, icons, theme

        cycle_collector.collect_on_gui_thread(app)
        theme.apply(app)
        app._llamadesk_wheel_guard = WheelGuard(app)
        app.installEventFilter(app._llamadesk_wheel_guard)
        app.setWindowIcon(icons.app_icon())
        app._llamadesk_set_up = True
    return app


def build_window(home: str | None = None, *, engine_command: list[str] | None = None):
    """The main window, not yet shown."""
    application()
    from gui.app_state import AppState
    from gui.main_window import MainWindow

    return MainWindow(AppState(home), engine_command=engine_command)
