"""Where the engine's messages go: protocol lines on the real stdout, and a copy in the run's events.jsonl.

``claim_stdout`` keeps file descriptor 1 for protocol lines only: anything else that prints (libraries, warnings,
progress bars) is redirected to stderr, which the client logs but never parses.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO, Any

from engine.light import export_report, protocol
from engine.light.run_folder import JsonLines, RunFolder
from engine.light.units import format_duration


def claim_stdout() -> IO[str]:
    """A private stream onto the original stdout; fd 1 and ``sys.stdout`` now lead to stderr."""
    sys.stdout.flush()
    private = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return private


class Emitter:
    """Thread-safe sink for protocol messages. ``human`` prints readable lines instead of JSON (a terminal user)."""

    def __init__(self, out: IO[str] | None, *, human: bool = False):
        self._out, self.human = out, human
        self._events: JsonLines | None = None
        self._lock = threading.Lock()

    def attach_run(self, folder: RunFolder) -> None:
        with self._lock:
            self._events = folder.open_events()

    def emit(self, msg: Any) -> None:
        line = protocol.encode(msg)
        with self._lock:
            if self._events is not None:
                self._events.write(line)
            self._to_client(msg, line)

    def forward(self, msg: Any) -> None:
        """Pass on a message another process already recorded in the run folder (a rank's): to the client only."""
        with self._lock:
            self._to_client(msg, protocol.encode(msg))

    def _to_client(self, msg: Any, line: str) -> None:
        if self._out is None:
            return
        try:
            self._out.write((_human(msg) if self.human else line) + "\n")
            self._out.flush()
        except (BrokenPipeError, ValueError, OSError):
            # The client went away: keep training; events.jsonl still records everything.
            self._out = None

    def detach_if_client_gone(self) -> bool:
        """Called when stdin closes. If the reader of stdout is gone too (the app died), send fds 1 and 2 to the null
        device, so no later write from any library fails with a broken pipe; events.jsonl and engine.log go on."""
        with self._lock:
            if self._out is None or self.human or not _reader_gone(self._out):
                return False
            self._out = None
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
        self.emit(protocol.Log("info", "the app went away; the run goes on and writes its progress to its folder"))
        return True

    def close(self) -> None:
        with self._lock:
            if self._events is not None:
                self._events.close()
                self._events = None


def _reader_gone(stream: IO[str]) -> bool:
    """Whether nobody reads this pipe any more (POSIX: polling the write end reports an error)."""
    try:
        import select

        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on Windows: the app keeps stdin open while it lives
        return True


def _human(msg: Any) -> str:
    if isinstance(msg, protocol.Progress):
        parts = [f"step {msg.step}/{msg.total_steps}", f"epoch {msg.epoch:.2f}"]
        if msg.loss is not None:
            parts.append(f"loss {msg.loss:.4f}")
        if msg.learning_rate is not None:
            parts.append(f"lr {msg.learning_rate:.2e}")
        if msg.tokens_per_s:
            parts.append(f"{msg.tokens_per_s:,.0f} tok/s")
        if msg.eta_s is not None:
            parts.append(f"ETA {format_duration(msg.eta_s)}")
        return "  ".join(parts)
    if isinstance(msg, protocol.State):
        return f"[{msg.state}] {msg.detail}".rstrip()
    if isinstance(msg, protocol.Eval):
        return f"eval at step {msg.step}: loss {msg.eval_loss:.4f}"
    if isinstance(msg, protocol.CheckpointSaved):
        return f"checkpoint saved: {msg.path}"
    if isinstance(msg, (protocol.Warning, protocol.Error)):
        label = "warning" if isinstance(msg, protocol.Warning) else "error"
        return f"{label}: {msg.message}" + (f"\n  → {msg.hint}" if msg.hint else "")
    if isinstance(msg, protocol.Finished):
        losses = loss_text(msg.metrics)
        return f"finished: adapter in {msg.adapter_path}" + (f" ({losses})" if losses else "")
    if isinstance(msg, protocol.CompareProgress):
        return compare_text(msg)
    if isinstance(msg, protocol.Log):
        return msg.message
    if isinstance(msg, protocol.ExportProgress):
        if not msg.total:
            return f"{msg.stage}: {msg.detail}" if msg.detail else msg.stage
        eta = f", about {format_duration(msg.eta_s)} left" if msg.eta_s is not None else ""
        return f"{msg.stage}: {msg.done}/{msg.total}{eta}"
    if isinstance(msg, protocol.ExportFinished):
        return export_report.summary(msg)
    if isinstance(msg, protocol.ChatToken):
        return msg.text
    if isinstance(msg, protocol.RunStarted):
        return f"{'resuming' if msg.resumed else 'run folder'}: {msg.run_dir}"
    return protocol.encode(msg)


def loss_text(metrics: dict) -> str:
    """The run's training loss, each number named: the Trainer's train_loss is the average over the run, not the
    last step's (which the Runs page lists)."""
    average, last = metrics.get("train_loss"), metrics.get("last_loss")
    parts = ([f"average training loss {average:.3g}"] if average is not None else []) + (
        [f"last {last:.3g}"] if last is not None else [])
    return " · ".join(parts)


def compare_text(msg: protocol.CompareProgress) -> str:
    if msg.stage == "loss":
        return f"comparing with the base model: validation loss of {'the fine-tune' if msg.done else 'the base model'}"
    eta = f", about {format_duration(msg.eta_s)} left" if msg.eta_s and msg.done < msg.total else ""
    return f"comparing with the base model: {msg.done} of {msg.total} answers{eta}"
