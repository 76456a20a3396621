"""DataCheckJob: runs ``engine data check CONFIG --json`` in the background and hands back its one JSON object.

The check gets the whole run config (model, dataset and every data setting), written to a file as the Train page
does for a run, so the check and a training run with the same settings read, tokenize and cache the dataset the same
way: the run after a check starts from the cache. The check loads a tokenizer and reads the whole dataset, so it
takes seconds to minutes; it runs in a process and reports through signals. Starting a new check cancels the one
still running.
"""

from __future__ import annotations

import itertools
import json

from PySide6.QtCore import QObject, Signal

from engine.light import config as run_config
from engine.light import paths
from gui.engine_client import engine_command, engine_environment
from gui.engine_json import error_text
from gui.line_process import Exit, LineProcess

STDERR_TAIL_LINES = 5  # shown when the check fails without its JSON answer
_counter = itertools.count(1)


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
        self._process: LineProcess | None = None
        self._stdout: list[str] = []
        self.last_error: dict = {}  # the engine's error object of the last failed check ({} when it had none)

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, config: run_config.RunConfig, *, home: str | None = None) -> None:
        self.cancel()
        self._stdout = []
        settings = paths.cache_dir("gui") / f"data-check-{next(_counter)}.yaml"
        run_config.save(config, settings)
        process = LineProcess(self)
        process.sig_stdout_line.connect(self._on_stdout_line)
        process.sig_stderr_line.connect(self._on_stderr_line)
        process.sig_exited.connect(self._on_process_exited)
        self._process = process
        process.start(self._command + ["data", "check", str(settings), "--json"], env=engine_environment(home))

    def cancel(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.abandon()  # a cancelled check stays silent

    def shutdown(self) -> None:
        """Cancel and wait for the process to end (the app is closing)."""
        process = self._process
        self.cancel()
        if process is not None:
            process.wait(3000)

    def _on_stdout_line(self, line: str) -> None:
        self._stdout.append(line)

    def _on_stderr_line(self, line: str) -> None:
        if line.strip():
            self.sig_status.emit(line.strip())

    def _on_process_exited(self, end: Exit) -> None:
        process = self.sender()
        if process is not self._process:  # a cancelled check stays silent
            return
        self._process = None
        process.deleteLater()
        result = _last_json_object(self._stdout)
        self.last_error = result["error"] if isinstance(result, dict) and isinstance(result.get("error"), dict) else {}
        if end.not_started:
            self.sig_failed.emit(f"could not start the engine: {end.not_started}\n"
                                 "→ check the LlamaDesk installation (or LLAMADESK_ENGINE)")
        elif isinstance(result, dict) and isinstance(result.get("error"), dict):
            self.sig_failed.emit(error_text(result["error"], "the data check failed"))
        elif isinstance(result, dict) and "report" in result:
            self.sig_done.emit(result)
        else:
            how = "crashed" if end.crashed else f"ended (exit code {end.exit_code})"
            tail = [line.strip() for line in end.stderr_tail.splitlines() if line.strip()][-STDERR_TAIL_LINES:]
            self.sig_failed.emit(f"the data check {how} without a result" + ("\n" + "\n".join(tail) if tail else ""))


def _last_json_object(lines: list[str]):
    """The check prints one JSON object; a stray library print before it must not hide it."""
    text = "\n".join(lines).strip()
    for candidate in [text] + [line for line in reversed(lines) if line.startswith("{")]:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None
