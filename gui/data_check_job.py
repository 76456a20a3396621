"""DataCheckJob: runs ``engine data check SOURCE --json …`` in the background and hands back its one JSON object.

The check loads a tokenizer and reads the whole dataset, so it takes seconds to minutes; it runs in a QProcess and
reports through signals, never blocking the UI thread. Starting a new check cancels the one still running.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QProcess, Signal
from shiboken6 import isValid

from gui.engine_client import engine_command, engine_process

STDERR_TAIL_LINES = 5  # shown when the check fails without its JSON answer


@dataclass(frozen=True)
class CheckOptions:
    """The ``data check`` options the Data page offers; None leaves the engine's default."""

    format: str | None = None
    columns: list[str] = field(default_factory=list)  # FIELD=COLUMN items
    model: str | None = None
    cutoff: int | None = None
    train_on: str | None = None
    packing: bool = False

    def arguments(self, source: str) -> list[str]:
        args = ["data", "check", source, "--json"]
        for flag, value in (("--format", self.format), ("--model", self.model), ("--cutoff", self.cutoff),
                            ("--train-on", self.train_on)):
            if value not in (None, ""):
                args += [flag, str(value)]
        if self.packing:
            args.append("--packing")
        if self.columns:  # last: --columns takes every item up to the next option
            args += ["--columns", *self.columns]
        return args


class DataCheckJob(QObject):
    """Signals: sig_status(str) for each progress line the engine prints to stderr; sig_done(dict) with the
    check's object (also when no row is usable: the report says why); sig_failed(str) with the message and,
    on a line of its own, the hint."""

    sig_status = Signal(str)
    sig_done = Signal(dict)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None):
        super().__init__(parent)
        self._command = command or engine_command()
        self._process: QProcess | None = None
        self._stdout = b""
        self._stderr_partial = b""
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, source: str, options: CheckOptions | None = None, *, home: str | None = None) -> None:
        self.cancel()
        self._stdout, self._stderr_partial = b"", b""
        self._stderr_tail.clear()
        process = engine_process(self, home)
        # Each handler checks that its process is still the current one: a cancelled check must stay silent.
        process.readyReadStandardOutput.connect(lambda: self._on_process_stdout(process))
        process.readyReadStandardError.connect(lambda: self._on_process_stderr(process))
        process.finished.connect(lambda code, status: self._on_process_finished(process, code, status))
        process.errorOccurred.connect(lambda error: self._on_process_error(process, error))
        self._process = process
        # An argument list, never a shell command line: the path may hold any character.
        process.start(self._command[0], self._command[1:] + (options or CheckOptions()).arguments(source))

    def cancel(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.state() == QProcess.ProcessState.NotRunning:
            process.deleteLater()
        else:
            process.finished.connect(process.deleteLater)
            process.kill()

    def shutdown(self) -> None:
        """Cancel and wait for the process to end (the app is closing)."""
        process = self._process
        self.cancel()
        if process is not None:
            process.waitForFinished(3000)

    def _on_process_stdout(self, process: QProcess) -> None:
        if process is self._process:
            self._stdout += bytes(process.readAllStandardOutput())

    def _on_process_stderr(self, process: QProcess) -> None:
        if process is not self._process:
            return
        *lines, self._stderr_partial = (self._stderr_partial + bytes(process.readAllStandardError())).split(b"\n")
        for raw in lines:
            # tqdm redraws a line with carriage returns; its latest state is what matters.
            line = raw.decode("utf-8", "replace").split("\r")[-1].strip()
            if line:
                self._stderr_tail.append(line)
                self.sig_status.emit(line)

    def _on_process_finished(self, process: QProcess, exit_code: int, exit_status) -> None:
        if process is not self._process or not isValid(process):  # finished while the job itself is destroyed
            return
        self._on_process_stdout(process)
        self._on_process_stderr(process)
        self._process = None
        process.deleteLater()
        result = _last_json_object(self._stdout)
        if isinstance(result, dict) and isinstance(result.get("error"), dict):
            self.sig_failed.emit(_error_text(result["error"]))
        elif isinstance(result, dict) and "report" in result:
            self.sig_done.emit(result)
        else:
            crashed = exit_status == QProcess.ExitStatus.CrashExit
            tail = list(self._stderr_tail) + [self._stderr_partial.decode("utf-8", "replace").strip()]
            tail = [line for line in tail if line]
            how = "crashed" if crashed else f"ended (exit code {exit_code})"
            self.sig_failed.emit(f"the data check {how} without a result" + ("\n" + "\n".join(tail) if tail else ""))

    def _on_process_error(self, process: QProcess, error) -> None:
        if process is self._process and error == QProcess.ProcessError.FailedToStart:
            self._process = None
            process.deleteLater()
            self.sig_failed.emit(f"could not start the engine: {process.errorString()}\n"
                                 "→ check the LlamaDesk installation (or LLAMADESK_ENGINE)")


def _last_json_object(output: bytes):
    """The check prints one JSON object; a stray library print before it must not hide it."""
    text = output.decode("utf-8", "replace").strip()
    for candidate in [text] + [line for line in reversed(text.splitlines()) if line.startswith("{")]:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _error_text(error: dict) -> str:
    message = str(error.get("message") or "the data check failed")
    where, hint = error.get("where"), error.get("hint")
    text = f"{where}: {message}" if where else message
    return f"{text}\n→ {hint}" if hint else text
