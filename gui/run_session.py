"""A training run the window shows live, whoever started its engine.

``EngineSession``: an engine this window started; messages come from its stdout, commands go to its stdin.
``FollowedSession``: a run whose engine was started elsewhere (an earlier session of the app, the command line);
messages come from its folder's events.jsonl as they are written, commands go through the folder's commands.jsonl,
and it ends when the engine releases the folder's lock. Pages use the ``RunSession`` interface and never ask which.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from engine.light import protocol
from engine.light.run_folder import RunFolder
from gui.engine_client import EngineClient, EngineState, Outcome


@dataclass(frozen=True)
class SessionEnd:
    """How a session ended. ``crashed``: the engine went away without saying it finished, stopped or failed."""

    crashed: bool
    exit_code: int | None = None  # known only for an engine this window started
    output_tail: str = ""  # the end of the run's engine.log, then of the engine's own error output


class RunSession(QObject):
    """Signals: sig_message(object) for each protocol message, sig_ended(SessionEnd) once."""

    sig_message = Signal(object)
    sig_ended = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.folder: RunFolder | None = None
        self.last_state = ""
        self.stop_requested = False

    def send(self, msg) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        """Save a checkpoint at the next step and end the run (it can be resumed)."""
        self.stop_requested = self.send(protocol.Stop())

    def kill(self) -> None:
        """End the engine now; the run resumes from its last checkpoint. Only an engine this window started."""

    def is_active(self) -> bool:
        raise NotImplementedError

    def is_stopping(self) -> bool:
        raise NotImplementedError

    def owns_engine(self) -> bool:
        return False

    def _deliver(self, msg) -> None:
        if isinstance(msg, protocol.RunStarted):
            self.folder = RunFolder(msg.run_dir)
        elif isinstance(msg, protocol.State):
            self.last_state = msg.state
        self.sig_message.emit(msg)

    def _tail(self, extra: str = "", count: int = 12) -> str:
        lines = self.folder.log_tail(count) if self.folder is not None else []
        if not lines:
            return "\n".join(extra.splitlines()[-count:])
        return "\n".join(lines + (extra.splitlines()[-4:] if extra.strip() else []))


class EngineSession(RunSession):
    """An engine process this window started with ``arguments`` (``train …``)."""

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None):
        super().__init__(parent)
        self.client = EngineClient(self, command=command)
        self.client.sig_message.connect(self._deliver)
        self.client.sig_exited.connect(self._on_client_exited)

    def start(self, arguments: list[str], *, home: str | None = None) -> None:
        self.client.start(arguments, home=home)

    def send(self, msg) -> bool:
        return self.client.send(msg)

    def stop(self) -> None:
        self.stop_requested = True
        self.client.stop()

    def kill(self) -> None:
        self.client.kill()

    def wait_for_exit(self, msecs: int) -> bool:
        return self.client.wait_for_exit(msecs)

    def is_active(self) -> bool:
        return self.client.is_running()

    def owns_engine(self) -> bool:
        return True

    def is_stopping(self) -> bool:
        return self.client.state == EngineState.STOPPING

    def _on_client_exited(self, outcome: Outcome) -> None:
        self.sig_ended.emit(SessionEnd(outcome.crashed, outcome.exit_code, self._tail(outcome.stderr_tail)))


class FollowedSession(RunSession):
    """A run held by an engine outside this window, followed through its folder."""

    POLL_MS = 400

    def __init__(self, folder: RunFolder, parent: QObject | None = None):
        super().__init__(parent)
        self.folder = folder
        self.pid: int | None = None
        self._events = folder.event_tail()
        self._timer = QTimer(self, interval=self.POLL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    def start(self) -> bool:
        """Attach if a live engine holds the folder. The history is replayed condensed: the chart is rebuilt from
        metrics.jsonl, so of the past progress events only the latest matters."""
        self.pid = self.folder.lock_holder()
        if self.pid is None:
            return False
        history = self._events.read()
        last_progress = max((i for i, m in enumerate(history) if isinstance(m, protocol.Progress)), default=-1)
        for index, msg in enumerate(history):
            if not isinstance(msg, protocol.Progress) or index == last_progress:
                self._deliver(msg)
        self._timer.start()
        return True

    def send(self, msg) -> bool:
        if not self.is_active():
            return False
        self.folder.send_command(msg)
        return True

    def is_active(self) -> bool:
        return self._timer.isActive()

    def is_stopping(self) -> bool:
        return self.stop_requested

    def _on_timer_timeout(self) -> None:
        alive = self.folder.lock_holder() == self.pid
        for msg in self._events.read():  # read after the liveness check: nothing written before the end is missed
            self._deliver(msg)
        if not alive:
            self._timer.stop()
            self.sig_ended.emit(SessionEnd(self.last_state not in protocol.TERMINAL_STATES, None, self._tail()))
