"""The QApplication and the main window, built the same way by ``llamadesk``, its self-test and the benches.

Pages are imported only when a window is built, so ``llamadesk --help`` answers instantly.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

PAGES = ("Model", "Dataset", "Train", "Chat", "Runs", "Engine")  # in the order of the work


def application() -> QApplication:
    existing = QApplication.instance()
    app = existing or QApplication(sys.argv[:1])
    app.setOrganizationName("LlamaDesk")
    app.setApplicationName("LlamaDesk")
    if existing is None or not getattr(app, "_llamadesk_themed", False):
        from gui import icons, theme

        theme.apply(app)
        app.setWindowIcon(icons.app_icon())
        app._llamadesk_themed = True
    return app


def build_window(home: str | None = None, *, engine_command: list[str] | None = None):
    """The main window, not yet shown."""
    application()
    from gui.app_state import AppState
    from gui.main_window import MainWindow

    return MainWindow(AppState(home), engine_command=engine_command)
