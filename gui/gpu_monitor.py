"""GpuMonitor: one NVML reader for the whole window, polling off the UI thread.

Every page that shows the GPU (the fit badges, the memory verdict, live telemetry) subscribes to ``sig_probe``
instead of reading NVML itself. A reading takes milliseconds to tens of milliseconds (longer with many processes);
on a worker thread it never delays a repaint. Polling pauses while none of the watching widgets is visible.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from engine.light import gpu

POLL_MS = 1500
COLLECT_MS = 20  # how often a reading under way is looked for
_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu-monitor")  # one reading at a time, app-wide


class GpuMonitor(QObject):
    """Signals: sig_probe(Probe) after each reading. ``latest`` is the last reading (None before the first)."""

    sig_probe = Signal(object)

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = POLL_MS):
        super().__init__(parent)
        self.latest: gpu.Probe | None = None
        self._watchers: list[QWidget] = []
        self._future: Future | None = None
        self._again = False  # a reading was asked for while one was under way: take another after it
        self._poll = QTimer(self, interval=interval_ms)
        self._poll.timeout.connect(self._on_poll_timeout)
        self._poll.start()
        # The worker cannot touch Qt objects, so the UI thread collects its result.
        self._collect = QTimer(self, interval=COLLECT_MS)
        self._collect.timeout.connect(self._on_collect_timeout)
        self.refresh()

    def watch(self, widget: QWidget) -> None:
        """Keep polling while ``widget`` is visible."""
        self._watchers.append(widget)
        widget.destroyed.connect(lambda: self._watchers.remove(widget) if widget in self._watchers else None)

    def refresh(self) -> None:
        """Take a reading that starts after this call (one already under way is followed by another)."""
        if self._future is None:
            self._future = _READER.submit(gpu.probe)
            self._collect.start()
        else:
            self._again = True

    def wait(self, timeout_s: float = 5.0) -> gpu.Probe | None:
        """Block until the readings asked for are in (for a decision that needs the GPU's state now)."""
        while self._future is not None:
            self._future.result(timeout_s)
            self._on_collect_timeout()
        return self.latest

    def _on_poll_timeout(self) -> None:
        if any(w.isVisible() for w in self._watchers):
            self.refresh()

    def _on_collect_timeout(self) -> None:
        future = self._future
        if future is None or not future.done():
            return
        self._future = None
        self._collect.stop()
        if self._again:
            self._again = False
            self.refresh()
        try:
            probe = future.result()
        except Exception as exc:  # probe() reports problems itself; anything else is still "no GPU"
            probe = gpu.Probe(False, f"{gpu.NO_GPU}: {exc}")
        self.latest = probe
        self.sig_probe.emit(probe)
