"""Commands from the client, read from stdin on a background thread and handed to the training or chat loop.

Stop, pause and resume are commands rather than POSIX signals (Windows has none) and take effect at step boundaries;
skip_comparison takes effect between the prompts of the comparison with the base model after training.
A training engine also watches ``commands.jsonl`` in its run folder, so a client that did not start it (a restarted
app) can still stop or pause it.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from pathlib import Path

from engine.light import protocol

log = logging.getLogger(__name__)
RUN_COMMANDS = (protocol.Stop, protocol.Pause, protocol.Resume, protocol.SkipComparison)  # what rank 0 must hear too


class Control:
    def __init__(self):
        self.stop = threading.Event()
        self.pause = threading.Event()  # asked to pause: save a checkpoint at the next step boundary and exit
        self.skip_comparison = threading.Event()  # end the comparison with the base model at its next prompt
        self.requests: queue.Queue = queue.Queue()  # chat requests and shutdown
        self.cancelled: set[str] = set()
        self._lock = threading.Lock()
        self.reader = protocol.Reader()
        self.on_client_gone = None  # called when stdin reaches end of file
        self._unwatch = threading.Event()
        self._forward: Path | None = None  # where the client's run commands go on to (the ranks' commands file)

    def listen(self, fd: int | None = None) -> threading.Thread:
        """Read commands from file descriptor ``fd`` (stdin by default) on a daemon thread."""
        fd = sys.stdin.fileno() if fd is None else fd
        thread = threading.Thread(target=self._read, args=(fd,), name="control", daemon=True)
        thread.start()
        return thread

    def watch_file(self, path: Path, interval_s: float = 0.5, *, fresh: bool = True) -> threading.Thread:
        """Also take commands appended to ``path``; lines already there were meant for an earlier engine (unless not
        ``fresh``: a rank whose launcher emptied the file and may already have passed a command on)."""
        if fresh or not path.exists():
            path.write_text("", encoding="utf-8")
        self._unwatch.clear()
        thread = threading.Thread(target=self._poll, args=(path, interval_s), name="control-file", daemon=True)
        thread.start()
        return thread

    def forward_to(self, path: Path) -> None:
        """Pass the client's run commands (stop, pause, resume, skip_comparison) on to ``path`` (emptied now), where
        the ranks' rank 0 reads them; they still set this process's own flags too."""
        path.write_text("", encoding="utf-8")
        self._forward = path

    def unwatch(self) -> None:
        self._unwatch.set()

    def handle(self, msg) -> None:
        if self._forward is not None and isinstance(msg, RUN_COMMANDS):
            with self._forward.open("a", encoding="utf-8") as handle:
                handle.write(protocol.encode(msg) + "\n")
        if isinstance(msg, protocol.Stop):
            self.stop.set()
        elif isinstance(msg, protocol.Pause):
            self.pause.set()
        elif isinstance(msg, protocol.Resume):  # a pause asked for but not yet reached is called off
            self.pause.clear()
        elif isinstance(msg, protocol.SkipComparison):
            self.skip_comparison.set()
        elif isinstance(msg, protocol.Cancel):
            with self._lock:
                self.cancelled.add(msg.id)
        elif isinstance(msg, (protocol.Chat, protocol.Shutdown)):
            if isinstance(msg, protocol.Shutdown):
                self.stop.set()
            self.requests.put(msg)
        else:
            log.warning("ignored a %s message: not a command", msg.TYPE)

    def comparison_skipped(self) -> bool:
        """Whether the comparison with the base model should end now: skipped, or the run asked to stop (its adapter
        is saved already, so stopping means finishing without the comparison)."""
        return self.skip_comparison.is_set() or self.stop.is_set()

    def is_cancelled(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self.cancelled or "" in self.cancelled

    def clear_cancel(self, request_id: str) -> None:
        with self._lock:
            self.cancelled.discard(request_id)
            self.cancelled.discard("")

    def _read(self, fd: int) -> None:
        # os.read on the raw descriptor: a daemon thread blocked in a buffered reader aborts interpreter shutdown.
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break  # the client closed stdin (or died): training goes on; chat ends
                for msg in self.reader.feed(data):
                    self.handle(msg)
        except (OSError, ValueError):
            pass
        if self.on_client_gone is not None:
            self.on_client_gone()
        self.requests.put(None)  # wakes a chat loop waiting for requests

    def _poll(self, path: Path, interval_s: float) -> None:
        tail = protocol.FileTail(path)
        while not self._unwatch.wait(interval_s):
            for msg in tail.read():
                self.handle(msg)
