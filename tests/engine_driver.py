"""Drives a real engine subprocess over its protocol, as the GUI does: test helper, not a test."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.light import protocol

TIMEOUT = 240


class EngineProcess:
    def __init__(self, home: Path, *args: str, program: list[str] | None = None, env: dict | None = None):
        """``program``: what runs instead of ``python -m engine`` (a harness that wraps it)."""
        env = dict(os.environ, LLAMADESK_HOME=str(home), PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen([*(program or [sys.executable, "-m", "engine"]), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.messages: list = []
        self.stdout_lines: list[bytes] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = protocol.Reader()
        threading.Thread(target=self._pump, daemon=True).start()
        self.stderr = b""
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line)
            for msg in self._reader.feed(line):
                self._queue.put(msg)
        self._queue.put(None)

    def _drain_stderr(self):
        self.stderr = self.proc.stderr.read()

    def send(self, msg) -> None:
        self.proc.stdin.write((protocol.encode(msg) + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout: float = TIMEOUT):
        """Collect messages until one matches; fail with the engine's stderr if the engine ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg is None:
                self.proc.wait()
                raise AssertionError(f"engine exited ({self.proc.returncode}) first:\n{self.stderr.decode()[-3000:]}")
            self.messages.append(msg)
            if predicate(msg):
                return msg
        raise AssertionError(f"timed out; last messages: {self.messages[-5:]}")

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Collect the remaining messages until the engine closes stdout; return its exit code."""
        try:
            while (msg := self._queue.get(timeout=timeout)) is not None:
                self.messages.append(msg)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("the engine did not exit") from None
        code = self.proc.wait(timeout=30)
        self._stderr_reader.join(timeout=30)  # stderr is read by its own thread: all of it is in self.stderr now
        return code

    def drain(self) -> list:
        """All messages received so far, including ones not yet consumed by wait_for."""
        while True:
            try:
                msg = self._queue.get_nowait()
            except queue.Empty:
                return self.messages
            if msg is not None:
                self.messages.append(msg)


def of_type(cls):
    return lambda msg: isinstance(msg, cls)


def state(name):
    return lambda msg: isinstance(msg, protocol.State) and msg.state == name


class Collected:
    """An emitter for engine functions called in-process: keeps every message."""

    def __init__(self):
        self.messages = []

    def emit(self, message) -> None:
        self.messages.append(message)

    def of(self, kind):
        return [m for m in self.messages if isinstance(m, kind)]
