"""Engine page: what this machine has, which engine build fits it, and setting that engine up (first run, repair,
reinstall, self-test). Installed thin apps open here until their engine is ready."""

from __future__ import annotations

import re
import sys

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui import engine_env
from gui.gpu_monitor import GpuMonitor
from gui.line_process import LineProcess
from gui.setup_job import SetupJob
from gui.widgets.labels import add_row, plain_label
from gui.widgets.log_view import LogView

LOG_LINES = 3000


class EnginePage(QWidget):
    def __init__(self, parent: QWidget | None = None, *, env: engine_env.EngineEnv | None = None,
                 sources: engine_env.Sources | None = None, managed: bool | None = None,
                 gpu_monitor: GpuMonitor | None = None):
        super().__init__(parent)
        self.env = env or engine_env.EngineEnv()
        self.sources = sources or engine_env.Sources.bundled()
        # A thin installed app manages its engine environment; a development install or the offline edition
        # runs the engine from the app's own Python and has nothing to set up.
        self.managed = managed if managed is not None else (getattr(sys, "frozen", False)
                                                             and not engine_env.bundled_engine())
        self.job = SetupJob(self)
        self.detection = engine_env.Detection(reason="looking for an NVIDIA GPU…")
        self.choice: engine_env.Choice | None = None
        self.gpu_monitor = gpu_monitor or GpuMonitor(self)
        self._smi = LineProcess(self)  # nvidia-smi, asked in the background when NVML knows nothing
        self._smi_output: list[str] = []
        self._build()
        self.job.sig_step.connect(self._on_step)
        self.job.sig_line.connect(self.log.add_line)
        self.job.sig_done.connect(self._on_done)
        self._smi.sig_stdout_line.connect(self._on_smi_line)
        self._smi.sig_exited.connect(self._on_smi_exited)
        self._smi_probe = None
        self.gpu_monitor.sig_probe.connect(self._on_gpu_probe)
        if self.gpu_monitor.latest is not None:
            self._on_gpu_probe(self.gpu_monitor.latest)
        self.refresh()

    def _build(self) -> None:
        self.state_label = plain_label(selectable=True)
        self.gpu_label = plain_label(selectable=True)
        self.why_label = plain_label(selectable=True)
        self.backend = QComboBox()
        self.backend.setAccessibleName("Engine build")
        for backend in engine_env.ALL_BACKENDS.values():
            self.backend.addItem(backend.label, backend.key)
        self.backend.setToolTip("The PyTorch build to install. The choice made for this machine is selected; pick "
                                "another to override it (for example CPU only).")
        self._picked: str | None = None  # a build the user chose over the detected one
        self.backend.activated.connect(self._on_backend_picked)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for name, handler, tip in (
                ("Install", self._install, "Set up the engine for the selected build."),
                ("Repair", self._install, "Run the installation again over the existing environment: "
                 "fixes missing or damaged files, downloads only what is missing."),
                ("Reinstall", self._reinstall, "Delete the engine environment and set it up "
                 "from nothing (for example after a driver update, to get a CUDA build)."),
                ("Run self-test", self._self_test, "Check the installed engine: versions, "
                 "device, a 4-bit layer forward and backward."),
                ("Cancel", self.job.cancel, "Stop the installation; Repair continues later.")):
            button = QPushButton(name)
            button.setToolTip(tip)
            button.clicked.connect(handler)
            self.buttons[name] = button
            row.addWidget(button)
        row.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setFormat("")
        self.step_label = plain_label(selectable=True)
        self.log = LogView(LOG_LINES)

        machine = QGroupBox("This machine")
        form = QFormLayout(machine)
        add_row(form, "GPU", self.gpu_label)
        add_row(form, "Engine build", self.backend)
        add_row(form, "", self.why_label)
        self.machine_form = form
        layout = QVBoxLayout(self)
        layout.addWidget(self.state_label)
        layout.addWidget(machine)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.step_label)
        layout.addWidget(self.log, 1)

    def needs_setup(self) -> bool:
        return self.managed and not self.env.ready()

    def _on_gpu_probe(self, probe) -> None:
        found = engine_env.from_probe(probe)
        if found is not None:
            self._set_detection(found)
        elif self.detection.source != "nvidia-smi" and not self._smi.is_running():
            command = engine_env.nvidia_smi_command()
            if command is None:
                self._set_detection(engine_env.Detection(reason=probe.reason or "no NVIDIA GPU"))
            else:
                self._smi_output.clear()
                self._smi_probe = probe
                self._smi.start(command)

    def _on_smi_line(self, line: str) -> None:
        self._smi_output.append(line)

    def _on_smi_exited(self, _end) -> None:
        self._set_detection(engine_env.from_nvidia_smi("\n".join(self._smi_output), self._smi_probe))

    def _set_detection(self, detection: engine_env.Detection) -> None:
        if detection != self.detection:
            self.detection = detection
            self.refresh()

    def refresh(self) -> None:
        """Show what was detected, the build chosen for it, and the environment's state."""
        self.choice = engine_env.choose(self.detection)
        found = self.detection
        if found.gpu or found.driver:
            cuda = f" (CUDA {found.cuda[0]}.{found.cuda[1]})" if found.cuda else ""
            self.gpu_label.setText(f"{found.gpu or 'NVIDIA GPU'}, driver {found.driver}{cuda}, found by "
                                   f"{found.source}")
        else:
            self.gpu_label.setText(_no_gpu(found)[:1].upper() + _no_gpu(found)[1:])
        # The GPU row already gives the reason no GPU was found: the choice's words would say it once more.
        why = self.choice.why.removeprefix(f"{_no_gpu(found)}: ")
        action = self._doable(self.choice.action)
        better = f"To do better: {action}." if action else ""
        self.why_label.setText(f"Chosen: {self.choice.backend.label} — {why}." + (f"\n{better}" if better else "")
                               if self.managed else better)
        self.why_label.setVisible(bool(self.why_label.text()))
        record = self.env.record()
        installed = record.get("backend") if record else None
        self.backend.setCurrentIndex(max(0, self.backend.findData(self._picked or installed
                                                                  or self.choice.backend.key)))
        if not self.managed:
            self.state_label.setText("This installation runs its engine from the app itself (a development "
                                     "install or the offline edition): there is nothing to set up.")
        elif record and record.get("selftest", {}).get("ok") and self.env.python.is_file():
            backend = engine_env.ALL_BACKENDS.get(installed)
            self.state_label.setText(f"The engine is ready: {backend.label if backend else installed}, PyTorch "
                                     f"{record.get('torch')}, installed {record.get('installed', '?')}; its "
                                     "self-test passed.")
        elif record and self.env.python.is_file():
            self.state_label.setText("The engine is installed but its last self-test failed. Repair it, or "
                                     "Reinstall to start from nothing.")
        elif record:
            self.state_label.setText(f"The engine's environment in {self.env.root} is gone. Install sets it up "
                                     "again.")
        else:
            self.state_label.setText("The engine is not set up yet. Install downloads PyTorch and the training "
                                     "libraries for the build below (about 1 GB for CPU, 3 GB for CUDA) into "
                                     f"{self.env.root}.")
        self._update_buttons()

    def _on_backend_picked(self, _index: int) -> None:
        self._picked = self.backend.currentData()

    def _install(self) -> None:
        self._run()

    def _reinstall(self) -> None:
        self._run(reinstall=True)

    def _self_test(self) -> None:
        self._run(selftest_only=True)

    def _run(self, *, reinstall: bool = False, selftest_only: bool = False) -> None:
        backend = engine_env.ALL_BACKENDS[self.backend.currentData()]
        self.log.clear()
        self.progress.setRange(0, 0)
        self.job.start(self.env, backend, self.sources, self.detection, reinstall=reinstall,
                       selftest_only=selftest_only)
        self._update_buttons()

    def _on_step(self, number: int, count: int, title: str) -> None:
        self.progress.setRange(0, count)
        self.progress.setValue(number - 1)
        self.progress.setFormat(f"step {number} of {count}")
        self.step_label.setText(title + "…")
        self.log.add_line(f"— {title}")

    def _on_done(self, ok: bool, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ok else 0)
        self.progress.setFormat("done" if ok else "stopped")
        self.refresh()  # the buttons first: the hint names only those that are there
        self.step_label.setText(message if ok else f"{message}\n{self._next_step()}")

    def _next_step(self) -> str:
        if self.env.python.is_file():
            return "→ Repair continues where it stopped; Reinstall starts from nothing."
        return "→ Install tries again."

    def _doable(self, action: str) -> str:
        """The choice's advice, naming only a button this page shows now."""
        if self.managed and self.env.python.is_file():
            return action
        if self.managed:
            return re.sub(r"(,? (?:then|and) choose )Reinstall", r"\1Install", action)
        # Nothing to set up: what is left is what to do outside the app (picking a build is for a set-up engine).
        return re.sub(r",? (then|and) choose Reinstall", "", action).split(";")[0].strip()

    def _update_buttons(self) -> None:
        """A button is shown only where it can do something here, and enabled only when it can do it now."""
        running = self.job.is_running()
        exists = self.env.python.is_file()
        for name, shown in (("Install", not exists), ("Repair", exists), ("Reinstall", exists),
                            ("Run self-test", exists), ("Cancel", True)):
            self.buttons[name].setVisible(self.managed and shown)
        for name in ("Install", "Repair", "Reinstall"):
            self.buttons[name].setEnabled(self.managed and not running)
        self.buttons["Run self-test"].setEnabled(self.managed and exists and not running)
        self.buttons["Cancel"].setEnabled(running)
        self.backend.setEnabled(self.managed and not running)
        self.machine_form.setRowVisible(self.backend, self.managed)  # a development install picks no build
        for widget in (self.progress, self.step_label, self.log):
            widget.setVisible(self.managed)


def _no_gpu(found: engine_env.Detection) -> str:
    """Why no GPU was found, as the detection says it."""
    return found.reason or "no NVIDIA GPU found"
