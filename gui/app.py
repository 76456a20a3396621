"""``llamadesk``: the desktop app's entry point."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from engine import paths


def _application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("LlamaDesk")
    app.setApplicationName("LlamaDesk")
    return app


def build_window(home: str | None = None, *, engine_command: list[str] | None = None):
    """The main window, not yet shown. Imports pages lazily so ``--help`` stays instant."""
    _application()
    from gui.app_state import AppState
    from gui.main_window import MainWindow

    return MainWindow(AppState(home), engine_command=engine_command)


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    parser = argparse.ArgumentParser(prog="llamadesk", description="LlamaDesk: fine-tune LLaMA models on your GPU.")
    parser.add_argument("--home", help=f"LlamaDesk's data folder (default: ${paths.ENV_HOME} or the per-user folder)")
    parser.add_argument("--page", choices=("Model", "Dataset", "Train", "Chat", "Runs"), help="page to open on")
    parser.add_argument("--demo", action="store_true",
                        help="open on the offline demo model and the bundled sample dataset, ready to train")
    args = parser.parse_args(argv)
    home = str(paths.set_home(args.home)) if args.home else None
    app = _application()
    window = build_window(home)
    if args.demo:
        from engine import demo

        config = demo.demo_config()  # the settings that teach the demo model the sample's facts in minutes
        window.state.set_config(config)
        window.dataset_page.open_path(config.dataset)
        window.show_page("Train")
    if args.page:
        window.show_page(args.page)
    window.show()
    return leave(window, app.exec())


def leave(window, code: int) -> int:
    """The app's last step. Destroying a QProcess kills its process, so when the user chose to keep training in the
    background the app exits without running destructors."""
    if window.leave_engine_running:
        QSettings().sync()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
