"""LineProcess: the one wrapper around every subprocess the window runs (engines, data checks, setup steps).

It starts a command from an argument list (never a shell line), hands back whole lines of stdout and stderr, keeps
the end of stderr for error messages, reports how the process ended, and ends it in stages when asked: an optional
grace period (for a command the caller sent) → terminate → kill, each with a timeout tied to this object, so a timer
never fires into a destroyed one.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal
from shiboken6 import isValid

from gui.timers import after

TAIL_LINES = 200


@dataclass(frozen=True)
class Exit:
    """How a process ended: ``exit_code`` is None when it crashed or was killed by a signal; ``not_started`` says
    why the program could not be started at all."""

    exit_code: int | None
    crashed: bool
    stderr_tail: str
    not_started: str = ""


class LineProcess(QObject):
    """Signals: sig_stdout_line(str), sig_stderr_line(str) for each complete line (a line redrawn with carriage
    returns arrives as its final state); sig_exited(Exit) once, also when the program could not be started."""

    sig_stdout_line = Signal(str)
    sig_stderr_line = Signal(str)
    sig_exited = Signal(object)

    TERMINATE_GRACE_MS = 5_000

    def __init__(self, parent: QObject | None = None, *, merge_output: bool = False):
        super().__init__(parent)
        self._merge = merge_output
        self._process: QProcess | None = None
        self._abandoned: QProcess | None = None  # killed and forgotten, but maybe not yet ended: wait() waits for it
        self._buffers = {"out": b"", "err": b""}
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._exited = False

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, command: list[str], *, env: dict[str, str] | None = None, new_session: bool = False) -> None:
        if self.is_running():
            raise RuntimeError("the process is already running")
        self._buffers = {"out": b"", "err": b""}
        self._tail.clear()
        self._exited = False
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        for key, value in (env or {}).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        if self._merge:
            process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        if new_session and sys.platform != "win32":
            # Its own session: a Ctrl+C or hang-up meant for the app's terminal does not reach it.
            params = QProcess.UnixProcessParameters()
            params.flags = QProcess.UnixProcessFlag.CreateNewSession
            process.setUnixProcessParameters(params)
        # Each handler checks that its process (the sender) is still the current one: an abandoned one stays silent.
        process.readyReadStandardOutput.connect(self._on_stdout)
        process.readyReadStandardError.connect(self._on_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start(command[0], command[1:])

    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int | None:
        return int(self._process.processId()) if self.is_running() else None

    def write_line(self, text: str) -> bool:
        if self._process is None or self._process.state() != QProcess.ProcessState.Running:
            return False
        self._process.write((text + "\n").encode("utf-8"))
        return True

    def end(self, grace_ms: int = 0) -> None:
        """Let the process exit on its own for ``grace_ms`` (after a command the caller sent), then terminate it,
        then kill it."""
        process = self._process
        if process is None:
            return
        if grace_ms:
            after(self, grace_ms, lambda: self._escalate(process, kill=False))
        else:
            self._escalate(process, kill=False)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()

    def abandon(self) -> None:
        """Kill the process and forget it: nothing more is reported from it (a cancelled job)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.state() == QProcess.ProcessState.NotRunning:
            process.deleteLater()
        else:
            process.finished.connect(process.deleteLater)
            process.kill()
            self._abandoned = process

    def wait(self, msecs: int) -> bool:
        """Wait for the process, or for the one just abandoned, to end (Qt warns about, and blocks on, a QProcess
        destroyed while its process runs)."""
        process = self._process or self._abandoned
        if process is None or not isValid(process) or process.state() == QProcess.ProcessState.NotRunning:
            return True
        return process.waitForFinished(msecs)

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._tail)[-lines:])

    # ---- process events ------------------------------------------------------------------------------------------
    def _escalate(self, process: QProcess, *, kill: bool) -> None:
        if process is not self._process or not isValid(process) or \
                process.state() == QProcess.ProcessState.NotRunning:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
            after(self, self.TERMINATE_GRACE_MS, lambda: self._escalate(process, kill=True))

    def _on_stdout(self) -> None:
        self._on_output(self.sender(), "out")

    def _on_stderr(self) -> None:
        self._on_output(self.sender(), "err")

    def _on_output(self, process: QProcess, channel: str) -> None:
        if process is not self._process or not isValid(process):
            return
        data = bytes(process.readAllStandardOutput() if channel == "out" else process.readAllStandardError())
        *lines, self._buffers[channel] = (self._buffers[channel] + data).split(b"\n")
        for raw in lines:
            self._emit_line(channel, raw)

    def _emit_line(self, channel: str, raw: bytes) -> None:
        # A progress bar redraws its line with carriage returns; the final state is the line.
        line = raw.decode("utf-8", "replace").rstrip("\r").split("\r")[-1]
        if channel == "out":
            self.sig_stdout_line.emit(line)
        else:
            self._tail.append(line)
            self.sig_stderr_line.emit(line)

    def _flush(self, process: QProcess) -> None:
        self._on_output(process, "out")
        self._on_output(process, "err")
        for channel in ("out", "err"):
            if self._buffers[channel].strip():
                self._emit_line(channel, self._buffers[channel])
            self._buffers[channel] = b""

    def _on_finished(self, exit_code: int, exit_status) -> None:
        process = self.sender()
        if process is not self._process or not isValid(process) or self._exited:
            return
        self._flush(process)
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._report(Exit(None if crashed else exit_code, crashed, self.stderr_tail()))

    def _on_error(self, error) -> None:
        process = self.sender()
        if process is self._process and error == QProcess.ProcessError.FailedToStart and not self._exited:
            reason = process.errorString()
            self._tail.append(f"could not start {process.program()}: {reason}")
            self._process = None
            process.deleteLater()
            self._report(Exit(None, True, self.stderr_tail(), not_started=reason))

    def _report(self, outcome: Exit) -> None:
        self._exited = True
        self.sig_exited.emit(outcome)
