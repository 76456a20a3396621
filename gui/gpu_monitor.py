"""GpuMonitor: one NVML reader for the whole window, polling off the UI thread.

Every page that shows the GPU (the fit badges, the memory verdict, live telemetry) subscribes to ``sig_probe``
instead of reading NVML itself. A reading takes milliseconds to tens of milliseconds (longer with many processes);
on a worker thread it never delays a repaint. Polling pauses while none of the watching widgets is visible.

The reading runs in a worker object moved to the monitor's own QThread (Qt's "Threads and QObjects"): requests and
readings cross by queued signals, so Qt drops a reading whose monitor is gone, and ``stop()`` quits the thread and
waits for it. The thread and its reader are held here, at module level, until the thread has finished, not by the
monitor: however the monitor goes (Python's cycle collector frees wrappers in any order, and hands a child back to
Python when it clears its parent), the reader is never deleted while its thread runs, nor the thread while it runs
(Qt aborts then). A monitor destroyed without ``stop()`` quits its thread; the interpreter's exit waits for it.
"""

from __future__ import annotations

import atexit
import threading
import weakref

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QWidget
from shiboken6 import isValid

from engine.light import gpu

POLL_MS = 1500

_THREADS: dict[QThread, _Reader] = {}  # every reader thread not yet seen finished, with its reader


class _Reader(QObject):
    """Lives on the monitor's thread: takes the readings asked for, in order, each with the number it was asked
    with. Its last reading can also be waited for from the window's thread (``result``)."""

    sig_read = Signal(int, object)  # the request's number, the Probe

    def __init__(self):
        super().__init__()  # no parent: it moves to its thread
        self._taken = threading.Condition()
        self._last: tuple[int, gpu.Probe | None] = (0, None)

    @Slot(int)
    def read(self, number: int) -> None:
        try:
            probe = gpu.probe()
        except Exception as exc:  # probe() reports problems itself; anything else is still "no GPU"
            probe = gpu.Probe(False, f"{gpu.NO_GPU}: {exc}")
        with self._taken:
            self._last = (number, probe)
            self._taken.notify_all()
        self.sig_read.emit(number, probe)

    def result(self, number: int, timeout_s: float) -> gpu.Probe | None:
        """The reading numbered ``number`` (or a later one), waited for at most ``timeout_s``; None if not taken."""
        with self._taken:
            self._taken.wait_for(lambda: self._last[0] >= number, timeout_s)
            return self._last[1] if self._last[0] >= number else None


class GpuMonitor(QObject):
    """Signals: sig_probe(Probe) after each reading. ``latest`` is the last reading (None before the first)."""

    sig_probe = Signal(object)
    _sig_read = Signal(int)  # to the reader, on its thread: take reading number N

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = POLL_MS):
        super().__init__(parent)
        self.latest: gpu.Probe | None = None
        self._watchers: list[weakref.ref[QWidget]] = []
        self._asked = 0  # the number of the last reading asked for
        self._delivered = 0  # the number of the last reading delivered (sig_probe)
        _forget_finished()
        self._thread = QThread()  # no parent: Qt destroys a child with its parent, running or not
        self._thread.setObjectName("gpu-monitor")
        self._reader = _Reader()
        self._reader.moveToThread(self._thread)
        _THREADS[self._thread] = self._reader
        self._sig_read.connect(self._reader.read)
        self._reader.sig_read.connect(self._on_read)
        self.destroyed.connect(self._thread.quit)  # freed without stop(): the thread still ends
        self._thread.start()
        self._poll = QTimer(self, interval=interval_ms)
        self._poll.timeout.connect(self._on_poll_timeout)
        self._poll.start()
        self.refresh()

    def watch(self, widget: QWidget) -> None:
        """Keep polling while ``widget`` is visible (held weakly: a watcher that is gone stops counting)."""
        self._watchers.append(weakref.ref(widget))

    def refresh(self) -> None:
        """Take a reading that starts after this call (one under way finishes first)."""
        if not self._thread.isRunning():  # stopped
            return
        self._asked += 1
        self._sig_read.emit(self._asked)

    def wait(self, timeout_s: float = 5.0) -> gpu.Probe | None:
        """Block until the readings asked for are in (for a decision that needs the GPU's state now); after
        ``timeout_s``, or once stopped, the last reading."""
        if self._delivered < self._asked and self._thread.isRunning():
            probe = self._reader.result(self._asked, timeout_s)
            if probe is not None:
                self._deliver(self._asked, probe)
        return self.latest

    def stop(self) -> None:
        """Stop polling, end the reader's thread and wait for a reading under way (the window is closing);
        idempotent."""
        self._poll.stop()
        self._thread.quit()
        self._thread.wait()
        _forget_finished()

    def is_running(self) -> bool:
        """Whether the reader's thread runs (from construction until ``stop()``)."""
        return self._thread.isRunning()

    def _watched(self) -> bool:
        self._watchers = [ref for ref in self._watchers if ref() is not None and isValid(ref())]
        return any(ref().isVisible() for ref in self._watchers)

    def _on_poll_timeout(self) -> None:
        if self._delivered == self._asked and self._watched():  # a slow reading is not queued behind
            self.refresh()

    def _on_read(self, number: int, probe: gpu.Probe) -> None:
        if number > self._delivered:  # else wait() has delivered it, or a later one, already
            self._deliver(number, probe)

    def _deliver(self, number: int, probe: gpu.Probe) -> None:
        self._delivered = number
        self.latest = probe
        self.sig_probe.emit(probe)


def _forget_finished() -> None:
    """Let go of the threads that have finished, and their readers (deleted then, on this thread)."""
    for thread in [t for t in _THREADS if t.isFinished()]:
        del _THREADS[thread]


@atexit.register
def _stop_all() -> None:
    """At the interpreter's exit, end the threads of monitors that were never stopped."""
    for thread in _THREADS:
        thread.quit()
    for thread in _THREADS:
        thread.wait()
    _THREADS.clear()
