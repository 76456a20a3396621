"""Train page: presets and settings, the memory panel, Start / Pause / Resume / Stop, and the live run view.

The training itself runs in an engine process through EngineClient; this page only sends commands and shows
events. A run opened from the Runs page is shown from its folder (metrics.jsonl) the same way.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
                               QPlainTextEdit, QProgressBar, QPushButton, QSplitter, QVBoxLayout, QWidget)

import resources
from engine import config as run_config
from engine import gpu, paths, protocol, settings
from engine.events import format_duration
from gui import run_store
from gui.app_state import AppState
from gui.engine_client import EngineClient, EngineState
from gui.widgets.config_form import ConfigForm
from gui.widgets.loss_chart import LossChart
from gui.widgets.memory_panel import MemoryPanel

BASIC_FIELDS = ["train.epochs", "train.max_steps", "train.learning_rate", "lora.rank", "lora.alpha",
                "train.micro_batch", "train.grad_accum", "data.cutoff", "quantization"]
ADVANCED_FIELDS = ["lora.dropout", "train.scheduler", "train.warmup_ratio", "train.gradient_checkpointing",
                   "train.optimizer", "train.weight_decay", "train.max_grad_norm", "train.seed",
                   "train.save_steps", "train.eval_steps", "train.keep_checkpoints", "data.packing",
                   "data.train_on", "data.validation_share", "compute_dtype", "double_quant", "device"]
TELEMETRY_MS = 1500
LOG_LINES = 5000


def presets() -> dict[str, dict]:
    found = {}
    for entry in sorted(resources.path("presets").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            found[data.pop("name")] = data
    return found


class TrainPage(QWidget):
    """Signals: sig_running_changed(bool) when a training engine starts or ends."""

    sig_running_changed = Signal(bool)

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self.client = EngineClient(self, command=engine_command)
        self.presets = presets()
        self.current_run: str | None = None
        self.run_dir: Path | None = None  # the folder the running engine writes

        self.preset = QComboBox()
        self.preset.addItems(["Custom", *self.presets])
        self.preset.setToolTip("Starting points for the settings below; any change makes them Custom.")
        self.preset.currentTextChanged.connect(self._on_preset_chosen)
        self.basic = ConfigForm(BASIC_FIELDS)
        self.advanced = ConfigForm(ADVANCED_FIELDS)
        advanced_box = QGroupBox("Advanced")
        advanced_box.setCheckable(True)
        advanced_box.setChecked(False)
        QVBoxLayout(advanced_box).addWidget(self.advanced)
        self.advanced.setVisible(False)
        advanced_box.toggled.connect(self.advanced.setVisible)
        for form in (self.basic, self.advanced):
            form.sig_changed.connect(self._on_form_changed)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.memory = QLabel()
        self.memory.setWordWrap(True)
        self.memory_panel = MemoryPanel()
        self.memory_panel.sig_apply.connect(self._on_memory_apply)

        self.buttons: dict[str, QPushButton] = {}
        controls = QHBoxLayout()
        for name, handler in (("Start", self.start), ("Pause", self.pause), ("Resume", self.resume),
                              ("Stop", self.stop), ("Load settings…", self.load_settings),
                              ("Save settings…", self.save_settings)):
            self.buttons[name] = QPushButton(name)
            self.buttons[name].clicked.connect(handler)
            controls.addWidget(self.buttons[name])
        self.buttons["Start"].setShortcut("Ctrl+Return")
        self.buttons["Stop"].setToolTip("Save a checkpoint at the next step, then end the run (it can be resumed).")
        self.buttons["Pause"].setToolTip("Hold at the next step and free cached GPU memory.")

        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.telemetry = QLabel()
        self.chart = LossChart()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(LOG_LINES)

        settings = QWidget()
        settings.setMaximumWidth(420)
        left = QVBoxLayout(settings)
        left.addWidget(QLabel("Preset"))
        left.addWidget(self.preset)
        left.addWidget(self.basic)
        left.addWidget(advanced_box)
        left.addWidget(self.summary)
        left.addWidget(self.memory)
        left.addWidget(self.memory_panel)
        left.addStretch(1)
        live = QWidget()
        right = QVBoxLayout(live)
        right.addLayout(controls)
        right.addWidget(self.progress)
        right.addWidget(self.status)
        right.addWidget(self.telemetry)
        vertical = QSplitter()
        vertical.setOrientation(vertical.orientation().Vertical)
        vertical.addWidget(self.chart)
        vertical.addWidget(self.log)
        vertical.setSizes([480, 160])  # the curve gets most of the height, the log the rest
        right.addWidget(vertical, 1)
        self.splitter = QSplitter()
        self.splitter.addWidget(settings)
        self.splitter.addWidget(live)
        self.splitter.setStretchFactor(1, 1)
        QVBoxLayout(self).addWidget(self.splitter)

        self.client.sig_run_started.connect(self._on_engine_run_started)
        self.client.sig_state.connect(self._on_engine_state)
        self.client.sig_progress.connect(self._on_engine_progress)
        self.client.sig_eval.connect(lambda e: self.chart.add_eval(e.step, e.eval_loss))
        self.client.sig_checkpoint.connect(lambda c: self._log(f"checkpoint saved at step {c.step}"))
        self.client.sig_log.connect(lambda m: self._log(m.message))
        self.client.sig_warning.connect(lambda w: self._log(f"warning: {w.message} ({w.hint})"))
        self.client.sig_error.connect(self._on_engine_error)
        self.client.sig_finished.connect(self._on_engine_finished)
        self.client.sig_stderr.connect(self.log.appendPlainText)
        self.client.sig_exited.connect(self._on_engine_exited)
        self.client.sig_engine_state.connect(lambda _: self._update_buttons())
        state.sig_config_changed.connect(self._on_state_config)
        self._telemetry_timer = QTimer(self, interval=TELEMETRY_MS)
        self._telemetry_timer.timeout.connect(self._on_telemetry_tick)
        self._paused = False
        self._on_state_config(state.config)
        self._update_buttons()

    # -- settings ------------------------------------------------------------------------------------------------
    def config(self) -> run_config.RunConfig:
        data = self.state.config.to_dict()
        for form in (self.basic, self.advanced):
            form.apply(data)
        return run_config.from_mapping(data)

    def _on_state_config(self, config: run_config.RunConfig) -> None:
        for form in (self.basic, self.advanced):
            form.load(config)
        self.memory_panel.show_for(config)
        self._update_summary()

    def _on_form_changed(self) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentText("Custom")
        self.preset.blockSignals(False)
        try:
            self.memory_panel.show_for(self.config())
        except run_config.ConfigError:
            pass  # an incomplete form: the panel keeps the last valid estimate
        self._update_summary()

    def _on_memory_apply(self, config: run_config.RunConfig) -> None:
        self.state.set_config(config)

    def _on_preset_chosen(self, name: str) -> None:
        if name not in self.presets:
            return
        data = self.state.config.to_dict()
        for section, values in self.presets[name].items():
            data[section].update(values)
        # Presets hold valid values; full validation (a dataset is chosen, …) happens on Start.
        self.state.set_config(settings.from_dict(run_config.RunConfig, data, []))
        self.preset.setCurrentText(name)

    def _update_summary(self) -> None:
        config = self.state.config
        self.summary.setText(f"Model: {config.model}\nDataset: {config.dataset or '(choose one on the Dataset page)'}")
        found = gpu.probe()
        if not found.available:
            self.memory.setText("No NVIDIA GPU found — the demo model can train on the CPU, slowly.")
        else:
            reading = found.gpus[0]
            capability = f", compute capability {reading.compute_capability}" if reading.compute_capability else ""
            others = reading.other_processes_bytes()
            busy = f"\nOther programs are using {others / 2**30:.1f} GiB of it." if others else ""
            self.memory.setText(f"{reading.name}: {reading.free_bytes / 2**30:.1f} GiB free of "
                                f"{reading.total_bytes / 2**30:.1f} GiB (driver {found.driver}{capability}){busy}")
        self._update_buttons()

    def load_settings(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load settings", str(paths.home()), "Run config (*.yaml *.yml)")
        if path:
            try:
                self.state.set_config(run_config.load(path))
            except run_config.ConfigError as exc:
                QMessageBox.warning(self, "Load settings", str(exc))

    def save_settings(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save settings", str(paths.home() / "run.yaml"),
                                              "Run config (*.yaml)")
        if path:
            try:
                run_config.save(self.config(), path)
            except (run_config.ConfigError, OSError) as exc:
                QMessageBox.warning(self, "Save settings", str(exc))

    # -- commands --------------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            config = self.config()
        except run_config.ConfigError as exc:
            self.status.setText("Cannot start:\n" + "\n".join(exc.problems))
            return
        self.state.set_config(config)
        pending = paths.cache_dir("gui") / "pending-run.yaml"
        run_config.save(config, pending)
        self._begin(["train", "--json", str(pending)], f"Starting: {config.model} on {Path(config.dataset).name}")

    def resume_run(self, run: run_store.RunSummary) -> None:
        self.show_run(run)
        self._begin(["train", "--json", "--resume", str(run.folder)], f"Resuming {run.name}")

    def _begin(self, arguments: list[str], message: str) -> None:
        if self.client.is_running():
            return
        self.chart.clear()
        self.log.clear()
        self.run_dir = None
        self._paused = False
        self.status.setText(message)
        self.progress.setRange(0, 0)  # busy until the first progress event
        self.client.start(arguments, home=self.state.home)
        self._telemetry_timer.start()
        self.sig_running_changed.emit(True)
        self.state.sig_runs_changed.emit()

    def pause(self) -> None:
        self.client.send(protocol.Pause())

    def resume(self) -> None:
        self.client.send(protocol.Resume())

    def stop(self) -> None:
        self.client.stop()
        self.status.setText("Stopping: saving a checkpoint at the next step…")

    def show_run(self, run: run_store.RunSummary) -> None:
        """Show a finished or running run's curves from its folder."""
        if self.client.is_running():
            return
        self.current_run = run.name
        self.chart.set_points(*run_store.metrics(run.folder))
        self.status.setText(f"Run {run.name}: {run.status}" + (f" — {run.error}" if run.error else ""))
        if run.total_steps:
            self.progress.setRange(0, run.total_steps)
            self.progress.setValue(run.steps)
            self.progress.setFormat(f"step {run.steps} / {run.total_steps}")

    # -- engine events ---------------------------------------------------------------------------------------
    def _on_engine_run_started(self, msg: protocol.RunStarted) -> None:
        self.run_dir = Path(msg.run_dir)
        self.current_run = self.run_dir.name
        self._log(f"run folder: {msg.run_dir}")

    def _on_engine_state(self, msg: protocol.State) -> None:
        self._paused = msg.state == "paused"
        labels = {"loading_model": "Loading the model…", "preparing_data": "Preparing the dataset…",
                  "training": "Training", "paused": "Paused", "saving": "Saving…", "finished": "Finished",
                  "stopped": "Stopped — the run can be resumed from the Runs page", "failed": "Failed"}
        self.status.setText(labels.get(msg.state, msg.state) + (f" ({msg.detail})" if msg.detail else ""))
        self._update_buttons()

    def _on_engine_progress(self, msg: protocol.Progress) -> None:
        self.progress.setRange(0, msg.total_steps)
        self.progress.setValue(msg.step)
        eta = f" · ETA {format_duration(msg.eta_s)}" if msg.eta_s is not None else ""
        self.progress.setFormat(f"step {msg.step} / {msg.total_steps}{eta}")
        self.chart.add_train(msg.step, msg.loss)
        parts = [f"loss {msg.loss:.4f}" if msg.loss is not None else "",
                 f"lr {msg.learning_rate:.2e}" if msg.learning_rate is not None else "",
                 f"{msg.tokens_per_s:,.0f} tokens/s" if msg.tokens_per_s else ""]
        self.status.setText("Training: " + " · ".join(p for p in parts if p))

    def _on_engine_error(self, msg: protocol.Error) -> None:
        self._log(f"error: {msg.message}")
        self.status.setText(f"Error: {msg.message}" + (f"\n→ {msg.hint}" if msg.hint else ""))

    def _on_engine_finished(self, msg: protocol.Finished) -> None:
        self.current_run = Path(msg.run_dir).name
        loss = msg.metrics.get("train_loss")
        self._log(f"finished: adapter saved in {msg.adapter_path}" + (f", train loss {loss:.4f}" if loss else ""))

    def _on_engine_exited(self, outcome) -> None:
        self._telemetry_timer.stop()
        self.progress.setRange(0, max(1, self.progress.maximum()))
        if outcome.crashed:
            self.status.setText(f"The engine stopped unexpectedly (exit status {outcome.exit_code}). The run can "
                                f"be resumed from its last checkpoint on the Runs page.\n{self._last_log_lines(outcome)}")
        self._update_buttons()
        self.sig_running_changed.emit(False)
        self.state.sig_runs_changed.emit()

    def _last_log_lines(self, outcome, count: int = 12) -> str:
        """The end of the run's engine.log where there is one, else of the engine's stderr."""
        log_file = self.run_dir / "engine.log" if self.run_dir else None
        if log_file is not None and log_file.is_file():
            lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
            tail = "\n".join(lines)
            if outcome.stderr_tail.strip():
                tail += "\n" + "\n".join(outcome.stderr_tail.splitlines()[-4:])
            return tail
        return "\n".join(outcome.stderr_tail.splitlines()[-count:])

    def _on_telemetry_tick(self) -> None:
        if not self.isVisible():
            return  # no polling for a hidden page
        found = gpu.probe()
        if not found.available:
            self.telemetry.setText("")
            return
        reading = found.gpus[0]
        parts = [f"GPU memory {reading.used_bytes / 2**30:.1f} / {reading.total_bytes / 2**30:.1f} GiB"]
        if reading.utilization_pct is not None:
            parts.append(f"utilisation {reading.utilization_pct}%")
        if reading.temperature_c is not None:
            parts.append(f"{reading.temperature_c} °C")
        if reading.power_w is not None:
            parts.append(f"{reading.power_w:.0f} W")
        self.telemetry.setText(" · ".join(parts))

    def _update_buttons(self) -> None:
        running = self.client.is_running()
        stopping = self.client.state == EngineState.STOPPING
        self.buttons["Start"].setEnabled(not running and bool(self.state.config.dataset))
        self.buttons["Pause"].setEnabled(running and not stopping and not self._paused)
        self.buttons["Resume"].setEnabled(running and self._paused)
        self.buttons["Stop"].setEnabled(running and not stopping)
        self.buttons["Load settings…"].setEnabled(not running)

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)
