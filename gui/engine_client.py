"""EngineClient: runs one engine process (QProcess) and turns its protocol lines into typed Qt signals.

Widgets subscribe to the signals and never touch the process. Stopping goes in stages, each with a timeout:
the ``stop`` command (the engine saves a checkpoint) → wait → terminate → kill.
"""

from __future__ import annotations

import enum
import os
import sys
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal
from shiboken6 import isValid

from engine import protocol

ENV_ENGINE = "LLAMADESK_ENGINE"  # a command line to run instead of "<this python> -m engine" (tests, bundles)


class EngineState(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    EXITED = "exited"


@dataclass(frozen=True)
class Outcome:
    """How an engine process ended. ``crashed``: it died without saying it finished, stopped or failed."""

    exit_code: int | None
    crashed: bool
    last_state: str
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return not self.crashed and self.exit_code == 0


_TERMINAL_STATES = {"finished", "stopped", "failed"}


class EngineClient(QObject):
    """Signals: sig_message(object) for every message, then the typed ones below; sig_stderr(str) per stderr line;
    sig_engine_state(EngineState); sig_exited(Outcome)."""

    sig_message = Signal(object)
    sig_hello = Signal(object)
    sig_run_started = Signal(object)
    sig_state = Signal(object)
    sig_progress = Signal(object)
    sig_eval = Signal(object)
    sig_memory = Signal(object)
    sig_checkpoint = Signal(object)
    sig_log = Signal(object)
    sig_warning = Signal(object)
    sig_error = Signal(object)
    sig_finished = Signal(object)
    sig_chat_token = Signal(object)
    sig_chat_done = Signal(object)
    sig_stderr = Signal(str)
    sig_engine_state = Signal(object)
    sig_exited = Signal(object)

    STOP_GRACE_MS = 120_000  # saving a checkpoint of a large adapter can take a while
    TERMINATE_GRACE_MS = 5_000

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None):
        super().__init__(parent)
        self._command = command or engine_command()
        self._process: QProcess | None = None
        self._reader = protocol.Reader()
        self._stderr_buffer = b""
        self._stderr_tail: deque[str] = deque(maxlen=200)
        self._last_state = ""
        self.state = EngineState.IDLE
        self._routes = {
            protocol.Hello: self.sig_hello, protocol.RunStarted: self.sig_run_started, protocol.State: self.sig_state, protocol.Progress: self.sig_progress,
            protocol.Eval: self.sig_eval, protocol.Memory: self.sig_memory,
            protocol.CheckpointSaved: self.sig_checkpoint, protocol.Log: self.sig_log,
            protocol.Warning: self.sig_warning, protocol.Error: self.sig_error, protocol.Finished: self.sig_finished,
            protocol.ChatToken: self.sig_chat_token, protocol.ChatDone: self.sig_chat_done,
        }

    @property
    def malformed_lines(self) -> int:
        return self._reader.malformed

    def is_running(self) -> bool:
        return self.state in (EngineState.STARTING, EngineState.RUNNING, EngineState.STOPPING)

    def start(self, arguments: list[str], *, home: str | None = None) -> None:
        if self.is_running():
            raise RuntimeError("the engine is already running")
        self._reader = protocol.Reader()
        self._stderr_buffer, self._last_state = b"", ""
        self._stderr_tail.clear()
        process = engine_process(self, home)
        process.readyReadStandardOutput.connect(self._on_process_stdout)
        process.readyReadStandardError.connect(self._on_process_stderr)
        process.finished.connect(self._on_process_finished)
        process.errorOccurred.connect(self._on_process_error)
        self._process = process
        self._set_state(EngineState.STARTING)
        # An argument list, never a shell command line.
        process.start(self._command[0], self._command[1:] + list(arguments))

    def send(self, msg) -> bool:
        if self._process is None or self._process.state() != QProcess.ProcessState.Running:
            return False
        self._process.write((protocol.encode(msg) + "\n").encode("utf-8"))
        return True

    def stop(self) -> None:
        """Ask the engine to stop (it saves a checkpoint first); escalate if it does not exit in time."""
        if not self.is_running():
            return
        self._set_state(EngineState.STOPPING)
        self.send(protocol.Stop())
        process = self._process
        # The timer is tied to this client: it never fires into a destroyed one.
        QTimer.singleShot(self.STOP_GRACE_MS, self, lambda: self._escalate(process, kill=False))

    def kill(self) -> None:
        """Cancel: end the process now (the run can still be resumed from its last checkpoint)."""
        if self._process is not None:
            self._set_state(EngineState.STOPPING)
            self._process.kill()

    def _escalate(self, process: QProcess, *, kill: bool) -> None:
        if process is not self._process or not isValid(process) or \
                process.state() == QProcess.ProcessState.NotRunning:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
            QTimer.singleShot(self.TERMINATE_GRACE_MS, self, lambda: self._escalate(process, kill=True))

    def wait_for_exit(self, msecs: int) -> bool:
        return self._process is None or self._process.waitForFinished(msecs)

    def _set_state(self, state: EngineState) -> None:
        self.state = state
        self.sig_engine_state.emit(state)

    def _on_process_stdout(self) -> None:
        data = bytes(self._process.readAllStandardOutput())
        for msg in self._reader.feed(data):
            if isinstance(msg, protocol.Hello) and self.state == EngineState.STARTING:
                self._set_state(EngineState.RUNNING)
            if isinstance(msg, protocol.State):
                self._last_state = msg.state
            self.sig_message.emit(msg)
            signal = self._routes.get(type(msg))
            if signal is not None:
                signal.emit(msg)

    def _on_process_stderr(self) -> None:
        self._stderr_buffer += bytes(self._process.readAllStandardError())
        *lines, self._stderr_buffer = self._stderr_buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            self._stderr_tail.append(line)
            self.sig_stderr.emit(line)

    def _on_process_finished(self, exit_code: int, exit_status) -> None:
        crashed = exit_status == QProcess.ExitStatus.CrashExit or (
            self._last_state not in _TERMINAL_STATES and exit_code != 0)
        outcome = Outcome(None if exit_status == QProcess.ExitStatus.CrashExit else exit_code, crashed,
                          self._last_state, "\n".join(list(self._stderr_tail)[-20:]))
        self._set_state(EngineState.EXITED)
        self.sig_exited.emit(outcome)

    def _on_process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._stderr_tail.append(f"could not start the engine: {self._process.errorString()}")
            self._set_state(EngineState.EXITED)
            self.sig_exited.emit(Outcome(None, True, "", "\n".join(self._stderr_tail)))


def engine_process(parent: QObject, home: str | None) -> QProcess:
    """A QProcess set up for the engine: unbuffered output, and the app's data folder when one is chosen."""
    process = QProcess(parent)
    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONUNBUFFERED", "1")
    if home:
        env.insert("LLAMADESK_HOME", home)
    process.setProcessEnvironment(env)
    if sys.platform != "win32":
        # Its own session: a Ctrl+C or hang-up meant for the app's terminal does not reach a training engine.
        params = QProcess.UnixProcessParameters()
        params.flags = QProcess.UnixProcessFlag.CreateNewSession
        process.setUnixProcessParameters(params)
    return process


def engine_command() -> list[str]:
    """How to start the engine: LLAMADESK_ENGINE if set; in an installed app, its bundled engine (offline edition)
    or the engine environment set up on first run; otherwise this Python's ``engine`` package."""
    configured = os.environ.get(ENV_ENGINE)
    if configured:
        import shlex

        return shlex.split(configured)
    if getattr(sys, "frozen", False):
        from gui import engine_env

        return [sys.executable, "--engine"] if engine_env.bundled_engine() else engine_env.EngineEnv().command()
    return [sys.executable, "-m", "engine"]
