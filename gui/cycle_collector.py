"""Python's cycle collector, on the GUI thread only.

Automatic collection runs on whichever thread allocates when a threshold is crossed: the GPU monitor's reader, an
API worker. A page, its AppState or any Qt object left in a reference cycle is then destroyed on that thread, where
Qt cannot stop its timers ("QObject::killTimer: Timers cannot be stopped from another thread"); the timer stays
registered with the GUI thread and later fires into freed memory, a crash in Qt's timer dispatch. pyqtgraph's
GarbageCollector turns automatic collection off and collects at the same thresholds on a GUI-thread timer.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QTimer

INTERVAL_MS = 1000  # how often the GUI thread looks at the collector's counts

_collector = None  # pyqtgraph's GarbageCollector, once started


def collect_on_gui_thread(app: QCoreApplication) -> None:
    """Call on the GUI thread. Automatic collection stops at once; pyqtgraph's collector starts one interval later,
    when its first look would be due anyway (importing pyqtgraph, numpy with it, would otherwise delay the window's
    first paint by about 0.4 s)."""
    gc.disable()
    QTimer.singleShot(INTERVAL_MS, app, collector)


def collector():
    """pyqtgraph's GarbageCollector, started on the first call (on the GUI thread: its timer lives there); automatic
    collection is off after every call."""
    global _collector
    gc.disable()
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=INTERVAL_MS / 1000)
    return _collector
