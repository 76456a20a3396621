"""TimeTrialJob: runs ``engine time CONFIG --json`` (a short trial of the run on this machine) in the background and
hands back its time estimate. Starting again or cancelling abandons the trial under way."""

from __future__ import annotations

import itertools

from PySide6.QtCore import QObject, Signal

from engine.light import config as run_config
from engine.light import paths, protocol
from gui.engine_client import engine_command, engine_environment
from gui.line_process import Exit, LineProcess

_counter = itertools.count(1)


class TimeTrialJob(QObject):
    """Signals: sig_status(str) while the trial runs; sig_done(TimeEstimate); sig_failed(str) with the message and,
    on a line of its own, the hint."""

    sig_status = Signal(str)
    sig_done = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None):
        super().__init__(parent)
        self._command = command or engine_command()
        self._process: LineProcess | None = None
        self._estimate: protocol.TimeEstimate | None = None
        self._error = ""

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, config: run_config.RunConfig, *, home: str | None = None) -> None:
        self.cancel()
        self._estimate, self._error = None, ""
        settings = paths.cache_dir("gui") / f"time-trial-{next(_counter)}.yaml"
        run_config.save(config, settings)
        process = LineProcess(self)
        process.sig_stdout_line.connect(self._on_line)
        process.sig_exited.connect(self._on_process_exited)
        self._process = process
        process.start(self._command + ["time", str(settings), "--json"], env=engine_environment(home))

    def cancel(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.abandon()

    def shutdown(self) -> None:
        process = self._process
        self.cancel()
        if process is not None:
            process.wait(3000)

    def _on_line(self, line: str) -> None:
        try:
            msg = protocol.decode(line)
        except protocol.ProtocolError:
            return  # not a protocol line (a library printing to stdout): nothing to show
        if isinstance(msg, protocol.State) and msg.state in ("timing", "loading_model", "preparing_data"):
            self.sig_status.emit(msg.detail or msg.state.replace("_", " "))
        elif isinstance(msg, protocol.TimeEstimate):
            self._estimate = msg
        elif isinstance(msg, protocol.Error):
            self._error = msg.message + (f"\n→ {msg.hint}" if msg.hint else "")

    def _on_process_exited(self, end: Exit) -> None:
        process = self.sender()
        if process is not self._process:  # an abandoned trial stays silent
            return
        self._process = None
        process.deleteLater()
        if self._estimate is not None:
            self.sig_done.emit(self._estimate)
        elif end.not_started:
            self.sig_failed.emit(f"could not start the engine: {end.not_started}")
        else:
            tail = end.stderr_tail.strip().splitlines()[-1:] if end.stderr_tail else []
            self.sig_failed.emit(self._error or "the time trial ended without an estimate"
                                 + (f" (exit code {end.exit_code})" if end.exit_code is not None else " (it crashed)")
                                 + (f"\n{tail[0]}" if tail else ""))
