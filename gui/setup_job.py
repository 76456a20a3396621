"""SetupJob: runs the engine environment's install steps one after another, for the Engine page.

The steps come from EngineEnv.steps (the same ones ``llamadesk --setup-engine`` runs); this only runs them without
blocking the window, streams their output, and records the result.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from gui import engine_env
from gui.line_process import Exit, LineProcess


class SetupJob(QObject):
    """Signals: sig_step(number, count, title), sig_line(text), sig_done(ok, message).

    A message says what happened, not which button to press next: the page knows which of its buttons are there."""

    sig_step = Signal(int, int, str)
    sig_line = Signal(str)
    sig_done = Signal(bool, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._process: LineProcess | None = None
        self._steps: list[engine_env.Step] = []
        self._index = 0
        self._output: list[str] = []
        self._context: tuple | None = None

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, env: engine_env.EngineEnv, backend: engine_env.Backend, sources: engine_env.Sources,
              detection: engine_env.Detection, *, reinstall: bool = False, selftest_only: bool = False) -> None:
        if self.is_running():
            return
        if reinstall:
            env.remove()
        steps = env.steps(backend, sources)
        self._steps = steps[-1:] if selftest_only else steps
        self._context = (env, backend, detection)
        self._index = -1
        self._next()

    def cancel(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.abandon()
            process.wait(3000)
            self.sig_done.emit(False, "Cancelled: the steps done so far are kept.")

    def _next(self) -> None:
        self._index += 1
        step = self._steps[self._index]
        self.sig_step.emit(self._index + 1, len(self._steps), step.title)
        self._output = []
        process = LineProcess(self, merge_output=True)
        process.sig_stdout_line.connect(self._on_line)
        process.sig_exited.connect(self._on_exited)
        self._process = process
        process.start(step.command)  # an argument list, never a shell line

    def _on_line(self, line: str) -> None:
        if self.sender() is not self._process:  # an abandoned step stays silent
            return
        self._output.append(line)
        if self._steps[self._index].title != "Self-test" and line.strip():  # its JSON line is summarised at the end
            self.sig_line.emit(line.rstrip())

    def _on_exited(self, end: Exit) -> None:
        process = self.sender()
        if process is not self._process:
            return
        self._process = None
        process.deleteLater()
        step = self._steps[self._index]
        if end.not_started:
            self.sig_done.emit(False, f"{step.title}: could not start {step.command[0]} ({end.not_started})")
            return
        if step.title == "Self-test":
            env, backend, detection = self._context
            result = engine_env.selftest_result("\n".join(self._output))
            env.write_record(backend, detection, result)
            if result.get("ok"):
                self.sig_done.emit(True, f"The engine is ready (self-test passed in {result.get('seconds', '?')} s).")
            else:
                self.sig_done.emit(False, "The engine's self-test failed:\n" + "\n".join(result.get("problems", [])))
            return
        if end.crashed or end.exit_code != 0:
            tail = "\n".join([line for line in self._output if line.strip()][-8:])
            self.sig_done.emit(False, f"{step.title} failed (exit code {end.exit_code}).\n{tail}\nIf it stopped on a "
                               "download, check the internet connection.")
            return
        self._next()
