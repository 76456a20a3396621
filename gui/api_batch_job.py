"""Runs the batch comparison with the API model (engine/light/api_compare.py) on a worker thread for the Runs page:
progress, the new comparison, or what stopped it. The window stays responsive meanwhile."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from engine.light import api_compare
from engine.light.api_chat import Endpoint
from engine.light.errors import UserError
from engine.light.run_folder import RunFolder


class ApiBatchJob(QObject):
    """Signals: sig_progress(str); sig_done(dict: the comparison with the API model's answers); sig_failed(str)."""

    sig_progress = Signal(str)
    sig_done = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._running = False  # until the end reaches the window's thread (the worker may outlive its last signal)
        self.sig_done.connect(self._ended)  # connected first: runs before the page's handlers
        self.sig_failed.connect(self._ended)

    def _ended(self, *_) -> None:
        self._running = False

    def is_running(self) -> bool:
        return self._running

    def start(self, folder: RunFolder, endpoint: Endpoint) -> bool:
        if self.is_running():
            return False
        self._running = True
        self._thread = threading.Thread(target=self._run, args=(folder, endpoint), name="api-batch", daemon=True)
        self._thread.start()
        return True

    def _run(self, folder: RunFolder, endpoint: Endpoint) -> None:
        try:
            result = api_compare.compare(folder, endpoint, progress=self.sig_progress.emit)
        except UserError as exc:
            self.sig_failed.emit(exc.message + (f" — {exc.hint}" if exc.hint else ""))
            return
        except Exception as exc:  # noqa: BLE001 - the page reports it; the window goes on
            self.sig_failed.emit(f"the comparison with the API model failed: {exc}")
            return
        self.sig_done.emit(result)
