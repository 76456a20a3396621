"""The QApplication and the main window, built the same way by ``llamadesk``, its self-test and the benches.

Pages are imported only when a window is built, so ``llamadesk --help`` answers instantly.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication


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
        app.setWindowIcon(icons.app_icon())
        app._llamadesk_set_up = True
    return app


def build_window(home: str | None = None, *, engine_command: list[str] | None = None):
    """The main window, not yet shown."""
    application()
    from gui.app_state import AppState
    from gui.main_window import MainWindow

    return MainWindow(AppState(home), engine_command=engine_command)
