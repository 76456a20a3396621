"""RunFollower: shows a run whose engine this app did not start (an earlier session of the app, the command line).

It reads new lines of the run's events.jsonl as they are written and sends commands through the run folder's
commands.jsonl, so a restarted app gets live progress and can pause, resume or stop the run. It ends when the engine
releases the run's lock.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine import protocol, runs


class RunFollower(QObject):
    """Signals: sig_message(object) for each event (on attach: the history condensed to its last progress),
    sig_ended() once the engine is gone."""

    sig_message = Signal(object)
    sig_ended = Signal()
    POLL_MS = 400

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.pid: int | None = None
        self._events: protocol.FileTail | None = None
        self._timer = QTimer(self, interval=self.POLL_MS)
        self._timer.timeout.connect(self._poll)

    def is_following(self) -> bool:
        return self._timer.isActive()

    def follow(self, run_dir: Path) -> bool:
        """Attach to ``run_dir`` if a live engine holds it."""
        pid = runs.lock_holder(run_dir)
        if pid is None:
            return False
        self.run_dir, self.pid = Path(run_dir), pid
        self._events = protocol.FileTail(self.run_dir / "events.jsonl")
        history = self._events.read()
        # The chart is rebuilt from metrics.jsonl; of the past progress events only the latest matters.
        last_progress = max((i for i, m in enumerate(history) if isinstance(m, protocol.Progress)), default=-1)
        for index, msg in enumerate(history):
            if not isinstance(msg, protocol.Progress) or index == last_progress:
                self.sig_message.emit(msg)
        self._timer.start()
        return True

    def send(self, msg) -> bool:
        if not self.is_following():
            return False
        runs.send_command(self.run_dir, msg)
        return True

    def _poll(self) -> None:
        alive = runs.lock_holder(self.run_dir) == self.pid
        for msg in self._events.read():  # read after the liveness check: nothing written before the end is missed
            self.sig_message.emit(msg)
        if not alive:
            self._timer.stop()
            self.sig_ended.emit()
