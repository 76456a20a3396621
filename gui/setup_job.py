"""SetupJob: runs the engine environment's install steps one after another in QProcesses, for the Engine page.

The steps come from EngineEnv.steps (the same ones ``llamadesk --setup-engine`` runs); this only runs them without
blocking the window, streams their output, and records the result.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QProcess, Signal

from gui import engine_env


class SetupJob(QObject):
    """Signals: sig_step(number, count, title), sig_line(text), sig_done(ok, message)."""

    sig_step = Signal(int, int, str)
    sig_line = Signal(str)
    sig_done = Signal(bool, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._process: QProcess | None = None
        self._steps: list[engine_env.Step] = []
        self._index = 0
        self._output = b""
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
            process.kill()
            process.waitForFinished(3000)
            process.deleteLater()
            self.sig_done.emit(False, "Cancelled. Repair continues where it stopped.")

    def _next(self) -> None:
        self._index += 1
        step = self._steps[self._index]
        self.sig_step.emit(self._index + 1, len(self._steps), step.title)
        self._output = b""
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(lambda: self._on_output(process))
        process.finished.connect(lambda code, status: self._on_finished(process, code, status))
        process.errorOccurred.connect(lambda error: self._on_error(process, error))
        self._process = process
        process.start(step.command[0], step.command[1:])  # an argument list, never a shell line

    def _on_output(self, process: QProcess) -> None:
        if process is not self._process:
            return
        data = bytes(process.readAllStandardOutput())
        self._output += data
        if self._steps[self._index].title != "Self-test":  # its one JSON line is summarised at the end
            for line in data.decode("utf-8", "replace").splitlines():
                if line.strip():
                    self.sig_line.emit(line.rstrip())

    def _on_error(self, process: QProcess, error) -> None:
        if process is self._process and error == QProcess.ProcessError.FailedToStart:
            self._process = None
            process.deleteLater()
            self.sig_done.emit(False, f"{self._steps[self._index].title}: could not start "
                               f"{self._steps[self._index].command[0]} ({process.errorString()})")

    def _on_finished(self, process: QProcess, code: int, status) -> None:
        if process is not self._process:
            return
        self._on_output(process)
        self._process = None
        process.deleteLater()
        step = self._steps[self._index]
        if step.title == "Self-test":
            env, backend, detection = self._context
            result = engine_env.selftest_result(self._output.decode("utf-8", "replace"))
            env.write_record(backend, detection, result)
            if result.get("ok"):
                self.sig_done.emit(True, f"The engine is ready (self-test passed in {result.get('seconds', '?')} s).")
            else:
                self.sig_done.emit(False, "The engine's self-test failed:\n" + "\n".join(result.get("problems", [])))
            return
        if status == QProcess.ExitStatus.CrashExit or code != 0:
            tail = "\n".join(self._output.decode("utf-8", "replace").strip().splitlines()[-8:])
            self.sig_done.emit(False, f"{step.title} failed (exit code {code}).\n{tail}\n→ check the internet "
                               "connection and choose Repair; Reinstall starts from nothing")
            return
        self._next()
