"""EngineClient: runs one engine process and turns its protocol lines into typed Qt signals.

Widgets subscribe to the signals and never touch the process. Stopping goes in stages, each with a timeout:
the ``stop`` command (the engine saves a checkpoint) → wait → terminate → kill.
"""

from __future__ import annotations

import enum
import os
import shlex
import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from engine.light import protocol
from gui import engine_env
from gui.line_process import Exit, LineProcess

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


class EngineClient(QObject):
    """Signals: sig_message(object) for every message, then the typed ones below; sig_stderr(str) per stderr line;
    sig_engine_state(EngineState); sig_exited(Outcome)."""

    sig_message = Signal(object)
    sig_hello = Signal(object)
    sig_state = Signal(object)
    sig_progress = Signal(object)
    sig_log = Signal(object)
    sig_error = Signal(object)
    sig_finished = Signal(object)
    sig_chat_token = Signal(object)
    sig_chat_done = Signal(object)
    sig_stderr = Signal(str)
    sig_engine_state = Signal(object)
    sig_exited = Signal(object)

    STOP_GRACE_MS = 120_000  # saving a checkpoint of a large adapter can take a while

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None):
        super().__init__(parent)
        self._command = command or engine_command()
        self._process = LineProcess(self)
        self._process.sig_stdout_line.connect(self._on_process_line)
        self._process.sig_stderr_line.connect(self.sig_stderr)
        self._process.sig_exited.connect(self._on_process_exited)
        self._reader = protocol.Reader()
        self._last_state = ""
        self.state = EngineState.IDLE
        self._routes = {
            protocol.Hello: self.sig_hello, protocol.State: self.sig_state, protocol.Progress: self.sig_progress,
            protocol.Log: self.sig_log, protocol.Error: self.sig_error, protocol.Finished: self.sig_finished,
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
        self._last_state = ""
        self._set_state(EngineState.STARTING)
        self._process.start(self._command + list(arguments), env=engine_environment(home), new_session=True)

    def pid(self) -> int | None:
        return self._process.pid()

    def send(self, msg) -> bool:
        return self._process.write_line(protocol.encode(msg))

    def stop(self, grace_ms: int | None = None) -> None:
        """Ask the engine to stop (a training engine saves a checkpoint first); escalate if it does not exit within
        ``grace_ms`` (default STOP_GRACE_MS)."""
        if not self.is_running():
            return
        self._set_state(EngineState.STOPPING)
        self.send(protocol.Stop())
        self._process.end(grace_ms=self.STOP_GRACE_MS if grace_ms is None else grace_ms)

    def kill(self) -> None:
        """Cancel: end the process now (the run can still be resumed from its last checkpoint)."""
        if self._process.is_running():
            self._set_state(EngineState.STOPPING)
            self._process.kill()

    def wait_for_exit(self, msecs: int) -> bool:
        return self._process.wait(msecs)

    def _set_state(self, state: EngineState) -> None:
        self.state = state
        self.sig_engine_state.emit(state)

    def _on_process_line(self, line: str) -> None:
        for msg in self._reader.feed((line + "\n").encode("utf-8")):
            if isinstance(msg, protocol.Hello) and self.state == EngineState.STARTING:
                self._set_state(EngineState.RUNNING)
            if isinstance(msg, protocol.State):
                self._last_state = msg.state
            self.sig_message.emit(msg)
            signal = self._routes.get(type(msg))
            if signal is not None:
                signal.emit(msg)

    def _on_process_exited(self, end: Exit) -> None:
        crashed = end.crashed or (self._last_state not in protocol.TERMINAL_STATES and end.exit_code != 0)
        self._set_state(EngineState.EXITED)
        self.sig_exited.emit(Outcome(end.exit_code, crashed, self._last_state, end.stderr_tail))


def engine_environment(home: str | None) -> dict[str, str]:
    """Unbuffered output, and the app's data folder when one is chosen."""
    env = {"PYTHONUNBUFFERED": "1"}
    if home:
        env["LLAMADESK_HOME"] = home
    return env


def engine_command() -> list[str]:
    """How to start the engine: LLAMADESK_ENGINE if set; in an installed app, its bundled engine (offline edition)
    or the engine environment set up on first run; otherwise this Python's ``engine`` package."""
    configured = os.environ.get(ENV_ENGINE)
    if configured:
        return shlex.split(configured)
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine"] if engine_env.bundled_engine() else engine_env.EngineEnv().command()
    return [sys.executable, "-m", "engine"]
