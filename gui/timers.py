"""A one-shot callback owned by a QObject.

``QTimer.singleShot(ms, context, callable)`` was seen to fire into a context deleted in the meantime (a segmentation
fault in QCoreApplication::notify, a test in a few runs), so the timer here is the owner's child: Qt deletes it
with the owner, and a deleted owner's callback cannot run.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QTimer


def after(owner: QObject, ms: int, callback: Callable[[], None]) -> QTimer:
    timer = QTimer(owner)
    timer.setSingleShot(True)
    timer.timeout.connect(callback)
    timer.timeout.connect(timer.deleteLater)
    timer.start(ms)
    return timer
