"""Train page: presets and settings, the memory panel, Start / Pause / Resume / Stop, and the live run view.

The page draws; ``TrainController`` decides. Every setting comes from the run config's schema (a form per group), the
run's events arrive through the controller whoever started its engine, and the GPU readings come from the shared
GPU monitor.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import resources
from engine.light import config as run_config
from engine.light import gpu, paths, protocol, tracking
from engine.light.run_folder import RunFolder, RunSummary
from engine.light.schema import ADVANCED, BASIC, RUN
from engine.light.setting_words import in_words
from engine.light.units import format_duration
from gui import gpu_text, progress_text
from gui.app_state import AppState
from gui.time_trial_job import TimeTrialJob
from gui.train_controller import TrainController
from gui.widgets import file_dialogs
from gui.widgets.config_form import ConfigForm
from gui.widgets.dialogs import ask, warn
from gui.widgets.labels import plain_label
from gui.widgets.log_view import LogView
from gui.widgets.loss_chart import LossChart
from gui.widgets.memory_panel import MemoryPanel

LOG_LINES = 5000
CUSTOM = "Custom"
TIME_PARTS = {"loading": "loading", "training": "training", "evaluation": "checks on the validation split",
              "comparison": "comparison with the base model"}


def presets() -> dict[str, dict]:
    """Preset name → overrides by dotted path, from resources/presets/*.yaml."""
    found = {}
    for entry in sorted(resources.path("presets").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            found[data.pop("name")] = data["settings"]
    return found


def _keep_place(widget: QWidget) -> None:
    """A widget that comes and goes keeps its room, so the page does not jump when it appears."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


def _section(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    column = QVBoxLayout(box)
    for widget in widgets:
        column.addWidget(widget)
    return box


class TrainPage(QWidget):
    """Signals: none of its own; ``controller`` has the run's (sig_running_changed when training starts or ends)."""

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self._engine_command = engine_command
        self.controller = TrainController(state, self, engine_command=engine_command)
        self.controller.ask = self._ask
        self.presets = presets()
        self._build_settings()
        self._build_live_view()
        self.splitter = QSplitter()
        self.splitter.addWidget(self.settings_panel)
        self.splitter.addWidget(self.live_panel)
        self.splitter.setStretchFactor(1, 1)
        QVBoxLayout(self).addWidget(self.splitter)
        self._connect()
        self.provenance.setText(state.settings_provenance())
        state.gpu.watch(self)
        self._on_state_config_changed(state.config, None)

    # ---- layout ------------------------------------------------------------------------------------------------
    def _build_settings(self) -> None:
        self.preset = QComboBox()
        self.preset.addItems([CUSTOM, *self.presets])
        self.preset.setToolTip("Starting points for the settings below; any change makes them Custom.")
        self.preset.setAccessibleName("Preset")
        self.run_form = ConfigForm.for_group(RUN)
        self.basic = ConfigForm.for_group(BASIC)
        self.advanced = ConfigForm.for_group(ADVANCED)
        self.forms = (self.run_form, self.basic, self.advanced)
        advanced_box = QGroupBox("Advanced")
        advanced_box.setCheckable(True)
        advanced_box.setChecked(False)
        QVBoxLayout(advanced_box).addWidget(self.advanced)
        self.advanced.setVisible(False)
        advanced_box.toggled.connect(self.advanced.setVisible)
        self.problems = plain_label()
        self.problems.setObjectName("error")
        self.tracking_label = plain_label(selectable=True)  # how to open the chosen trackers' records
        self.tracking_label.setObjectName("pagePurpose")
        self.tracking_label.hide()
        self.gpu_label = plain_label()
        self.memory_panel = MemoryPanel()
        self.time_button = QPushButton("Estimate the time")
        self.time_button.setToolTip("A short trial on this machine with these settings and this data (loading, a few "
                                    "steps, an evaluation pass, generation), extrapolated to the whole run")
        self.time_button.clicked.connect(self._on_time_clicked)
        self.time_label = plain_label("How long the run will take: a short trial measures it on this machine.",
                                      selectable=True)
        self._estimate: protocol.TimeEstimate | None = None  # the last time trial's, for the comparison's time left
        self.time_job = TimeTrialJob(self, command=self._engine_command)
        self.time_job.sig_status.connect(self._on_time_status)
        self.time_job.sig_done.connect(self._on_time_estimate)
        self.time_job.sig_failed.connect(self._on_time_failed)
        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 8, 0)
        column.setSpacing(10)
        self.cluster_button = QPushButton("Run on a cluster…")
        self.cluster_button.setToolTip("Write a job folder that trains these settings on a cluster with torchrun "
                                       "(Slurm and SkyPilot templates included)")
        self.cluster_button.clicked.connect(self._on_cluster_clicked)
        self.settings_files = QHBoxLayout()  # Load / Save settings…, filled with the run's controls
        column.addLayout(self.settings_files)
        column.addWidget(_section("Run", self.run_form, self.tracking_label, self.cluster_button))
        self.provenance = plain_label(selectable=True)  # which settings these are: a preset, a file, the last session
        self.provenance.setObjectName("pagePurpose")
        training = _section("Training", self.basic)
        training.layout().insertWidget(0, self.preset)
        training.layout().insertWidget(1, self.provenance)
        column.addWidget(training)
        column.addWidget(advanced_box)
        column.addWidget(self.problems)
        column.addWidget(_section("GPU memory", self.gpu_label, self.memory_panel))
        column.addWidget(_section("Time", self.time_label, self.time_button))
        column.addStretch(1)
        # The settings scroll on a short screen instead of squeezing every field below its size.
        self.settings_panel = QScrollArea()
        self.settings_panel.setWidget(content)
        self.settings_panel.setWidgetResizable(True)
        self.settings_panel.setFrameShape(QScrollArea.Shape.NoFrame)
        self.settings_panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_panel.setMinimumWidth(content.sizeHint().width()
                                            + self.settings_panel.verticalScrollBar().sizeHint().width() + 4)
        self.settings_panel.setMaximumWidth(max(460, self.settings_panel.minimumWidth()))

    def _build_live_view(self) -> None:
        self.buttons: dict[str, QPushButton] = {}
        controls = QHBoxLayout()
        for name, handler, tip in (
                ("Start", self.start, "Start training with these settings (Ctrl+Enter)."),
                ("Pause", self.controller.pause, "Save a checkpoint at the next step and end the engine, so the GPU "
                                                 "is free; Resume continues from that step."),
                ("Resume", self.controller.resume, "Continue a paused run."),
                ("Stop", self.controller.stop, "Save a checkpoint at the next step, then end the run (it can be "
                                               "resumed)."),
                ("Load settings…", self.load_settings, "Load the settings of a saved run config."),
                ("Save settings…", self.save_settings, "Save these settings as a run config YAML.")):
            self.buttons[name] = QPushButton(name)
            self.buttons[name].setToolTip(tip)
            self.buttons[name].clicked.connect(handler)
            # The run's controls beside the chart; the settings' files with the settings (the page fits 1280 px).
            (self.settings_files if name.endswith("settings…") else controls).addWidget(self.buttons[name])
        self.skip_button = QPushButton("Skip comparison")
        self.skip_button.setToolTip("End the comparison with the base model after the answer under way. The run "
                                    "finishes with its fine-tune saved, without the comparison; compute it later "
                                    "with llamadesk-engine eval RUN.")
        self.skip_button.clicked.connect(self.controller.skip_comparison)
        self.skip_button.setVisible(False)
        self.buttons["Start"].setShortcut("Ctrl+Return")
        self.buttons["Start"].setObjectName("primary")
        self.retry_button = QPushButton()
        self.retry_button.setAccessibleName("Retry with the proposed change")
        _keep_place(self.retry_button)
        self.retry_button.setVisible(False)
        self.retry_button.clicked.connect(self.controller.retry)
        self.progress = QProgressBar()
        self.progress.setFormat("Not started")
        self.progress.setToolTip(progress_text.PROGRESS_TIP)
        # The skip button appears beside the bar while comparing: the bar is as tall, so the row keeps its height.
        self.progress.setMinimumHeight(self.skip_button.sizeHint().height())
        progress_row = QHBoxLayout()
        progress_row.setContentsMargins(0, 0, 0, 0)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.skip_button)
        self.status = plain_label("Ready.", selectable=True)
        self.status.setToolTip(progress_text.STATUS_TIP)
        self.telemetry = plain_label()
        # Room for the lines that come and go (a status of two lines, the GPU readings), so the chart stays put.
        lines = self.status.fontMetrics().lineSpacing()
        self.status.setMinimumHeight(2 * lines + 4)
        self.telemetry.setMinimumHeight(lines + 2)
        self.chart = LossChart()
        self.smooth_box = QCheckBox("Smooth the curve")
        self.smooth_box.setToolTip("Draw the training loss as a moving average (exponential, as TensorBoard smooths) "
                                   "over the raw curve")
        self.smooth_box.toggled.connect(self.chart.set_smoothed)
        self.log = LogView(LOG_LINES)
        self.live_panel = QWidget()
        column = QVBoxLayout(self.live_panel)
        column.addLayout(controls)
        column.addLayout(progress_row)
        for widget in (self.status, self.retry_button, self.telemetry):
            column.addWidget(widget)
        chart_box = QWidget()
        chart_column = QVBoxLayout(chart_box)
        chart_column.setContentsMargins(0, 0, 0, 0)
        chart_column.addWidget(self.smooth_box, 0, Qt.AlignmentFlag.AlignRight)
        chart_column.addWidget(self.chart, 1)
        vertical = QSplitter()
        vertical.setOrientation(vertical.orientation().Vertical)
        vertical.addWidget(chart_box)
        vertical.addWidget(self.log)
        vertical.setSizes([480, 160])  # the curve gets most of the height, the log the rest
        column.addWidget(vertical, 1)

    def _connect(self) -> None:
        self.preset.currentTextChanged.connect(self._on_preset_chosen)
        for form in self.forms:
            form.sig_changed.connect(self._on_form_changed)
        self.memory_panel.sig_apply.connect(self.state.set_config)
        c = self.controller
        c.sig_status.connect(self.status.setText)
        c.sig_progress.connect(self._on_controller_progress)
        c.sig_chart_reset.connect(self.chart.set_points)
        c.sig_train_point.connect(self.chart.add_train)
        c.sig_eval_point.connect(self.chart.add_eval)
        c.sig_log.connect(self.log.add_line)
        c.sig_log_reset.connect(self.log.clear)
        c.sig_retry_offer.connect(self._on_controller_retry_offer)
        c.sig_controls_changed.connect(self._update_buttons)
        c.sig_ended.connect(self._on_controller_ended)
        self.state.sig_config_changed.connect(self._on_state_config_changed)
        self.state.sig_data_lengths_changed.connect(self._show_memory)
        self.state.gpu.sig_probe.connect(self._on_gpu_probe)

    # ---- settings ------------------------------------------------------------------------------------------------
    def form_data(self) -> dict:
        data = self.state.config.to_dict()
        for form in self.forms:
            form.apply(data)
        return data

    def config(self) -> run_config.RunConfig:
        """The settings on the form, validated (a ConfigError lists every problem)."""
        return run_config.from_mapping(self.form_data())

    def _on_form_changed(self) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentText(CUSTOM)
        self.preset.blockSignals(False)
        try:
            config = run_config.from_mapping(self.form_data(), require_dataset=False)
        except run_config.ConfigError as exc:  # the panel keeps the last valid estimate
            self.problems.setText("To fix before starting:\n" + "\n".join(map(in_words, exc.problems)))
            return
        self.problems.clear()
        self.state.set_config(config, origin=self)
        self.memory_panel.show_for(config, self.state.gpu.latest, self.state.longest_row())
        self._update_buttons()

    def _on_state_config_changed(self, config: run_config.RunConfig, origin) -> None:
        self.provenance.setText(self.state.settings_provenance())
        if origin is not self:  # the form already shows what it sent
            for form in self.forms:
                form.load(config)
            self.problems.clear()
            self._show_memory()
        self._show_tracking(config)
        if getattr(self, "_timed_config", None) is not None and config != self._timed_config \
                and not self.time_job.is_running():
            self._timed_config = None
            self.time_label.setText("The settings changed since the estimate: estimate again.")
        self._update_buttons()

    # ---- time estimate -------------------------------------------------------------------------------------------
    def _on_cluster_clicked(self) -> None:
        from gui.cluster_dialog import ClusterDialog

        try:
            config = self.config()
        except run_config.ConfigError as exc:
            self.problems.setText("Before writing a cluster job: " + "; ".join(map(in_words, exc.problems)))
            return
        dialog = ClusterDialog(config, home=self.state.home, engine_command_=self._engine_command, parent=self)
        dialog.show()

    def _on_time_clicked(self) -> None:
        if self.time_job.is_running():
            self.time_job.cancel()
            self._on_time_ended("Cancelled.")
            return
        self._timed_config = self.state.config
        self.time_job.start(self.state.config, home=self.state.home)
        self.time_button.setText("Cancel the estimate")
        self.time_label.setText("Measuring: starting the engine…")

    def _on_time_status(self, text: str) -> None:
        self.time_label.setText(f"Measuring: {text}…")

    def _on_time_failed(self, text: str) -> None:
        self._on_time_ended(f"No estimate: {text}")

    def _on_time_estimate(self, estimate: protocol.TimeEstimate) -> None:
        self._estimate = estimate
        parts = ", ".join(f"{TIME_PARTS.get(name, name)} {format_duration(seconds)}"
                          for name, seconds in estimate.parts.items() if seconds)
        self._on_time_ended(f"About {format_duration(estimate.seconds)} on this machine ({parts}).")
        self.time_label.setToolTip(f"{estimate.steps:,} training steps of {estimate.step_s:.2f} s each, measured by a "
                                   f"{format_duration(estimate.trial_s)} trial: loading, a few steps, one evaluation "
                                   "pass over the validation split, and generation for the comparison with the base "
                                   "model.")

    def _on_time_ended(self, text: str) -> None:
        self.time_label.setText(text)
        self.time_button.setText("Estimate the time")

    def _show_memory(self) -> None:
        self.memory_panel.show_for(self.state.config, self.state.gpu.latest, self.state.longest_row())

    def _show_tracking(self, config: run_config.RunConfig) -> None:
        commands = tracking.open_commands(config.train.report_to)
        self.tracking_label.setText("Open the records with:\n" + "\n".join(commands) if commands else "")
        self.tracking_label.setVisible(bool(commands))

    def _on_preset_chosen(self, name: str) -> None:
        if name in self.presets:
            data = run_config.apply_overrides(self.state.config.to_dict(), self.presets[name])
            self.state.set_config(run_config.from_mapping(data, require_dataset=False), source=f"the {name} preset")
            self.preset.setCurrentText(name)

    def load_settings(self) -> None:
        path = file_dialogs.open_file(self, "Load settings", str(paths.home()), "Run config (*.yaml *.yml)")
        if path:
            try:
                self.state.set_config(run_config.load(path, require_dataset=False),
                                      source=f"the file {Path(path).name}")
            except run_config.ConfigError as exc:
                warn(self, "Load settings", str(exc))

    def save_settings(self) -> None:
        path = file_dialogs.save_file(self, "Save settings", str(paths.home() / "run.yaml"), "Run config (*.yaml)")
        if path:
            try:
                run_config.save(run_config.from_mapping(self.form_data(), require_dataset=False), path)
            except (run_config.ConfigError, OSError) as exc:
                warn(self, "Save settings", str(exc))

    # ---- runs ------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            config = self.config()
        except run_config.ConfigError as exc:
            self.status.setText("Cannot start:\n" + "\n".join(map(in_words, exc.problems)))
            return
        self.state.set_config(config)
        # The time trial of these very settings gives the comparison's time left until the engine measures it.
        estimate = self._estimate
        timed = estimate is not None and getattr(self, "_timed_config", None) == config
        self.controller.comparison_estimate_s = estimate.parts.get("comparison") if timed else None
        self.controller.start(config)

    def resume_run(self, run: RunSummary) -> None:
        self.controller.resume_run(run)

    def show_run(self, run: RunSummary) -> None:
        self.controller.show_run(run)

    def attach(self, folder: RunFolder) -> bool:
        return self.controller.attach(folder)

    def attach_running(self) -> str | None:
        return self.controller.attach_running()

    def is_busy(self) -> bool:
        return self.controller.is_busy()

    def _ask(self, title: str, text: str) -> bool:
        return ask(self, title, text)

    # ---- what the controller and the GPU monitor report ----------------------------------------------------------
    def _on_controller_progress(self, value: int, maximum: int, text: str) -> None:
        self.progress.setRange(0, maximum)
        self.progress.setValue(value)
        # The bar holds one line: the comparison's name is on the status line, the count and time left on the bar.
        self.progress.setFormat(text.removeprefix(progress_text.COMPARING + ": "))
        self.progress.setToolTip(f"{text}\n\n{progress_text.PROGRESS_TIP}")

    def _on_controller_retry_offer(self, text: str) -> None:
        self.retry_button.setText(text)
        self.retry_button.setToolTip("Resume the run from its last checkpoint with this change" if text else "")
        self.retry_button.setVisible(bool(text))

    def _on_controller_ended(self, _end) -> None:
        self.progress.setRange(0, max(1, self.progress.maximum()))

    def _on_gpu_probe(self, probe: gpu.Probe) -> None:
        self.run_form.widgets["distributed.gpus"].set_probe(probe)
        self.gpu_label.setText(gpu_text.summary(probe))
        self.telemetry.setText(gpu_text.telemetry(probe))
        self.memory_panel.on_probe(self.state.config, probe, self.state.longest_row())

    def _update_buttons(self) -> None:
        allowed = self.controller.controls()
        for name, button in self.buttons.items():
            if name in allowed:
                button.setEnabled(allowed[name])
        self.retry_button.setEnabled(allowed["Retry"])
        self.skip_button.setVisible(self.controller.comparing and self.controller.is_busy())
        self.skip_button.setEnabled(allowed["Skip comparison"])

