"""ExportJob: runs ``llamadesk-engine export RUN …`` in an engine process and reports its progress and result.

The export loads models and writes gigabytes, so it never runs in the window's process. Cancel sends the engine a
stop: it removes what it wrote and says "cancelled"; a kill follows if it does not exit in time.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.light import protocol
from engine.light.export_options import ExportOptions
from gui.engine_client import EngineClient, Outcome


class ExportJob(QObject):
    """Signals: sig_progress(ExportProgress); sig_finished(ExportFinished) with the report; sig_failed(str) with the
    message and, on its own line, the hint (also when the engine crashed); sig_cancelled(); sig_ended() last."""

    sig_progress = Signal(object)
    sig_finished = Signal(object)
    sig_failed = Signal(str)
    sig_cancelled = Signal()
    sig_ended = Signal()

    CANCEL_GRACE_MS = 30_000

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None):
        super().__init__(parent)
        self.client = EngineClient(self, command=command)
        self.client.sig_message.connect(self._on_message)
        self.client.sig_exited.connect(self._on_exited)
        self._error = ""
        self._finished = False

    def is_running(self) -> bool:
        return self.client.is_running()

    def start(self, run_folder: str, options: ExportOptions, *, device: str = "auto", home: str | None = None) -> None:
        self._error, self._finished = "", False
        arguments = ["export", run_folder, "--format", options.format, "--quant", options.quant,
                     "--merge-into", options.merge_into, "--device", device, "--json"]
        if options.out is not None:
            arguments += ["--out", str(options.out)]
        if options.system:
            arguments += ["--system", options.system]
        self.client.start(arguments, home=home)

    def cancel(self) -> None:
        self.client.stop(self.CANCEL_GRACE_MS)

    def wait(self, msecs: int) -> bool:
        return self.client.wait_for_exit(msecs)

    def _on_message(self, msg) -> None:
        if isinstance(msg, protocol.ExportProgress):
            self.sig_progress.emit(msg)
        elif isinstance(msg, protocol.ExportFinished):
            self._finished = True
            self.sig_finished.emit(msg)
        elif isinstance(msg, protocol.Error):
            self._error = msg.message + (f"\n{msg.hint}" if msg.hint else "")

    def _on_exited(self, outcome: Outcome) -> None:
        if outcome.last_state == "cancelled":
            self.sig_cancelled.emit()
        elif not self._finished:
            tail = outcome.stderr_tail.strip().splitlines()[-5:]
            self.sig_failed.emit(self._error or "the export engine stopped unexpectedly"
                                 + (":\n" + "\n".join(tail) if tail else ""))
        self.sig_ended.emit()
