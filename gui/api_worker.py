"""One API call at a time off the window's thread: a worker QObject moved to its own QThread (Qt's "Threads and
QObjects" pattern), used by the Chat page's API column and the Runs page's batch comparison.

What it guarantees the window:
- its signals arrive in the window's thread through queued connections to this object, so Qt drops them when this
  object is deleted: a page that is gone is never called;
- busy lasts until the call's end reaches the window's thread (the thread may still be winding down then);
- ``cancel()`` ends the call at once, even while it waits on a silent server (``api_chat.Cancel`` shuts the socket);
- ``shutdown()`` cancels and waits, bounded, for the thread, and whatever the call still sends is dropped; deleting
  this object without it cancels too;
- no QThread object is destroyed while it runs (Qt aborts the process then): every thread is held here, at module
  level, until it has finished, and the interpreter's exit waits for any still ending.
"""

from __future__ import annotations

import atexit
import time
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.light.api_chat import CONNECT_TIMEOUT_S, Cancel
from engine.light.errors import UserError

SHUTDOWN_WAIT_MS = 3_000  # a cancelled call ends in milliseconds; only opening a connection can take longer

Call = Callable[[Cancel, Callable[[str], None]], object]  # (cancel, emit a piece of text) -> the result

_THREADS: dict[QThread, tuple["_Task", Cancel]] = {}  # every worker thread not yet seen finished: its task and cancel


class _Task(QObject):
    """Lives in the worker thread and runs the call there; its signals cross to the ApiWorker by queued
    connections. (PySide6 calls a subclass's override of the ``run`` slot in the window's thread: extend ``_end``.)"""

    sig_piece = Signal(str)
    sig_done = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, call: Call, cancel: Cancel, failure: str):
        super().__init__()  # no parent: it moves to its thread
        self._call, self._cancel, self._failure = call, cancel, failure

    @Slot()
    def run(self) -> None:
        try:
            result = self._call(self._cancel, self.sig_piece.emit)
        except UserError as exc:
            self.sig_failed.emit(exc.message + (f" — {exc.hint}" if exc.hint else ""))
        except Exception as exc:  # noqa: BLE001 - the call fails alone; the window goes on
            self.sig_failed.emit(f"{self._failure}: {exc}")
        else:
            self.sig_done.emit(result)
        finally:
            self._end()

    def _end(self) -> None:
        self.thread().quit()  # takes effect even before the thread's event loop starts


class _Cancels:
    """The calls under way, cancelled together; a plain object, so the ApiWorker's ``destroyed`` can still reach it."""

    def __init__(self):
        self.current: Cancel | None = None

    def cancel(self, *_) -> None:
        if self.current is not None:
            self.current.cancel()


class ApiWorker(QObject):
    """Signals (in the window's thread): sig_piece(str), sig_done(object: the call's result), sig_failed(str: the
    message and its hint)."""

    sig_piece = Signal(str)
    sig_done = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._task: _Task | None = None  # the call whose signals are delivered; None after shutdown
        self._threads: list[QThread] = []  # this worker's threads, the current one last
        self._busy = False
        self._cancels = _Cancels()
        self.destroyed.connect(self._cancels.cancel)  # deleted with its page, mid-call: the call ends too

    def is_busy(self) -> bool:
        return self._busy

    def start(self, call: Call, *, failure: str) -> bool:
        """Run ``call(cancel, emit)`` on a new thread; ``failure`` begins the message of an unexpected exception.
        False while busy."""
        if self._busy:
            return False
        _forget_finished()
        cancel = Cancel()
        self._cancels.current = cancel
        task = _Task(call, cancel, failure)
        thread = QThread()
        thread.setObjectName("api-worker")
        task.moveToThread(thread)
        task.sig_piece.connect(self._on_piece)
        task.sig_done.connect(self._on_done)
        task.sig_failed.connect(self._on_failed)
        thread.started.connect(task.run)
        thread.finished.connect(self._on_thread_finished)
        _THREADS[thread] = (task, cancel)
        self._threads = [t for t in self._threads if t in _THREADS] + [thread]
        self._task, self._busy = task, True
        thread.start()
        return True

    def cancel(self) -> None:
        """End the call under way soon; its end (the result so far, or the failure) still arrives."""
        self._cancels.cancel()

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Cancel, drop whatever the call still sends, and wait at most ``wait_ms`` for this worker's threads to
        finish; True if they have."""
        self._task, self._busy = None, False
        self.cancel()
        deadline = time.monotonic() + wait_ms / 1000
        for thread in self._threads:
            thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))
        return not self.running()

    def running(self) -> bool:
        """Whether a thread of this worker is still running."""
        return any(t in _THREADS and not t.isFinished() for t in self._threads)

    # ---- in the window's thread ----------------------------------------------------------------------------------
    def _current(self) -> bool:
        return self._task is not None and self.sender() is self._task

    def _on_piece(self, text: str) -> None:
        if self._current():
            self.sig_piece.emit(text)

    def _on_done(self, result) -> None:
        if self._current():
            self._task, self._busy = None, False  # free before anyone hears of the end
            self.sig_done.emit(result)

    def _on_failed(self, text: str) -> None:
        if self._current():
            self._task, self._busy = None, False
            self.sig_failed.emit(text)

    def _on_thread_finished(self) -> None:
        _forget_finished()
        self._threads = [t for t in self._threads if t in _THREADS]


def running_threads() -> list[QThread]:
    """Every worker thread that has not finished (for tests and the app's exit)."""
    return [thread for thread in _THREADS if not thread.isFinished()]


def _forget_finished() -> None:
    for thread in [t for t in _THREADS if t.isFinished()]:
        thread.wait()  # returns at once: finished; the objects may now go
        del _THREADS[thread]


@atexit.register
def _wait_at_exit() -> None:
    """Before the interpreter frees the QThread objects: every call is cancelled, and ends at once, or within the
    connect timeout while it is still opening its connection."""
    for _task, cancel in list(_THREADS.values()):
        cancel.cancel()
    deadline = time.monotonic() + CONNECT_TIMEOUT_S + 2
    for thread in running_threads():
        thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))
