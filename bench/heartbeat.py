"""A QTimer heartbeat that records how late the event loop runs it: the measure of UI responsiveness in benches."""

from __future__ import annotations

import statistics
import time

from PySide6.QtCore import QTimer


class Heartbeat:
    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.late: list[float] = []  # seconds past the due time, per beat
        self._last = time.perf_counter()
        self._timer = QTimer(interval=int(interval_s * 1000))
        self._timer.timeout.connect(self._beat)

    def start(self) -> None:
        self.restart()
        self._timer.start()

    def restart(self) -> None:
        """Forget the beats so far (measure one phase at a time)."""
        self.late.clear()
        self._last = time.perf_counter()

    def _beat(self) -> None:
        now = time.perf_counter()
        self.late.append(max(0.0, now - self._last - self.interval_s))
        self._last = now

    def summary(self) -> str:
        late_ms = sorted(x * 1000 for x in self.late)
        return (f"median {statistics.median(late_ms):.1f} ms late, p99 {late_ms[int(0.99 * (len(late_ms) - 1))]:.1f}"
                f" ms, max {late_ms[-1]:.1f} ms ({len(late_ms)} beats)")
