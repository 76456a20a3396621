"""Runs the batch comparison with the API model (engine/light/api_compare.py) on a worker thread (gui/api_worker.py)
for the Runs page: progress, the new comparison, or what stopped it. The window stays responsive meanwhile."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.light import api_compare
from engine.light.api_chat import Endpoint
from engine.light.run_folder import RunFolder
from gui.api_worker import ApiWorker


class ApiBatchJob(QObject):
    """Signals: sig_progress(str); sig_done(dict: the comparison with the API model's answers); sig_failed(str)."""

    sig_progress = Signal(str)
    sig_done = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = ApiWorker(self)  # running until the end reaches the window's thread
        self.worker.sig_piece.connect(self.sig_progress)
        self.worker.sig_done.connect(self.sig_done)
        self.worker.sig_failed.connect(self.sig_failed)

    def is_running(self) -> bool:
        return self.worker.is_busy()

    def start(self, folder: RunFolder, endpoint: Endpoint) -> bool:
        def call(cancel, emit):
            return api_compare.compare(folder, endpoint, progress=emit, cancel=cancel)

        return self.worker.start(call, failure="the comparison with the API model failed")

    def cancel(self) -> None:
        """Stop after the answers so far (they are kept, with why it stopped)."""
        self.worker.cancel()

    def shutdown(self) -> bool:
        """Cancel and wait (bounded) for the worker thread; nothing more is signalled. True when it has ended."""
        return self.worker.shutdown()
