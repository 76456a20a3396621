"""Train page: presets and settings, the memory panel, Start / Pause / Resume / Stop, and the live run view.

The training itself runs in an engine process through EngineClient; this page only sends commands and shows
events. A run opened from the Runs page is shown from its folder (metrics.jsonl) the same way, and a run whose engine
this window did not start (the app was closed or crashed meanwhile) is followed live through RunFollower.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
                               QPlainTextEdit, QProgressBar, QPushButton, QSplitter, QVBoxLayout, QWidget)

import resources
from engine import config as run_config
from engine import disk, gpu, paths, protocol, runs, settings
from engine.events import format_duration
from gui import run_store
from gui.app_state import AppState
from gui.engine_client import EngineClient, EngineState
from gui.run_follower import RunFollower
from gui.widgets.config_form import ConfigForm
from gui.widgets.loss_chart import LossChart
from gui.widgets.memory_panel import MemoryPanel

BASIC_FIELDS = ["train.epochs", "train.max_steps", "train.learning_rate", "lora.rank", "lora.alpha",
                "train.micro_batch", "train.grad_accum", "data.cutoff", "quantization"]
ADVANCED_FIELDS = ["lora.dropout", "train.scheduler", "train.warmup_ratio", "train.gradient_checkpointing",
                   "train.padding_free", "train.checkpoint_every", "train.checkpoint_offload",
                   "train.loss_chunk_tokens",
                   "train.fp32_frozen_layers",
                   "train.optimizer", "train.weight_decay", "train.max_grad_norm", "train.seed",
                   "train.save_steps", "train.eval_steps", "train.keep_checkpoints", "data.packing",
                   "data.train_on", "data.validation_share", "compute_dtype", "double_quant", "device"]
TELEMETRY_MS = 1500
LOG_LINES = 5000
OTHER_GPU_USE_BYTES = 512 * 2**20  # other programs' GPU memory worth a warning before a start


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
        self.follower = RunFollower(self)  # a run started outside this window
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
        self.retry_button = QPushButton()
        self.retry_button.setVisible(False)
        self.retry_button.clicked.connect(self.retry)
        self._retry: tuple[Path, dict] | None = None

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
        right.addWidget(self.retry_button)
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

        # Events from the engine this window started and from a followed run take the same path.
        self._handlers = {
            protocol.RunStarted: self._on_engine_run_started, protocol.State: self._on_engine_state,
            protocol.Progress: self._on_engine_progress,
            protocol.Eval: lambda e: self.chart.add_eval(e.step, e.eval_loss),
            protocol.CheckpointSaved: lambda c: self._log(f"checkpoint saved at step {c.step}"),
            protocol.Log: lambda m: self._log(m.message),
            protocol.Warning: lambda w: self._log(f"warning: {w.message} ({w.hint})"),
            protocol.Error: self._on_engine_error, protocol.Finished: self._on_engine_finished,
        }
        self.client.sig_message.connect(self._dispatch)
        self.follower.sig_message.connect(self._dispatch)
        self.follower.sig_ended.connect(self._on_follow_ended)
        self.client.sig_stderr.connect(self.log.appendPlainText)
        self.client.sig_exited.connect(self._on_engine_exited)
        self.client.sig_engine_state.connect(lambda _: self._update_buttons())
        state.sig_config_changed.connect(self._on_state_config)
        self._telemetry_timer = QTimer(self, interval=TELEMETRY_MS)
        self._telemetry_timer.timeout.connect(self._on_telemetry_tick)
        self._paused = False
        self._last_state = ""
        self._stop_sent = False  # a stop sent to a followed run
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
        if not self._preflight(config):
            return
        pending = paths.cache_dir("gui") / "pending-run.yaml"
        run_config.save(config, pending)
        self._begin(["train", "--json", str(pending)], f"Starting: {config.model} on {Path(config.dataset).name}")

    def resume_run(self, run: run_store.RunSummary) -> None:
        self.show_run(run)
        try:
            config = run_config.load(run.folder / "config.yaml")
        except run_config.ConfigError as exc:
            self.status.setText(f"Cannot resume {run.name}: " + "; ".join(exc.problems))
            return
        if self._preflight(config):
            self._begin(["train", "--json", "--resume", str(run.folder)], f"Resuming {run.name}")

    def retry(self) -> None:
        """Resume the run that ran out of memory, with the settings the engine proposed."""
        if self._retry is None or self.is_busy():
            return
        run_dir, overrides = self._retry
        sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
        self._begin(["train", "--json", "--resume", str(run_dir), *sets],
                    f"Retrying {run_dir.name} from its last checkpoint with " + self._retry_text(overrides))

    def _preflight(self, config: run_config.RunConfig) -> bool:
        """Refuse a start the disk cannot hold; ask before sharing the GPU with another run or program."""
        problem = self._disk_problem(config)
        if problem:
            self.status.setText(f"Cannot start: {problem}.\nFree disk space (delete old runs on the Runs page) or "
                                "choose a data folder on a larger disk.")
            return False
        busy = [f"the LlamaDesk run {name} (process {pid})" for name, pid in runs.busy_runs()]
        found = gpu.probe()
        if found.available and found.gpus[0].other_processes_bytes() > OTHER_GPU_USE_BYTES:
            busy.append(f"other programs holding {found.gpus[0].other_processes_bytes() / 2**30:.1f} GiB of "
                        f"{found.gpus[0].name}")
        if not busy:
            return True
        answer = QMessageBox.question(
            self, "The GPU is busy",
            "The GPU is in use by " + " and ".join(busy) + ".\n\nTwo jobs on one GPU are each slower and either may "
            "run out of memory. Start anyway?")
        return answer == QMessageBox.StandardButton.Yes

    @staticmethod
    def _disk_problem(config: run_config.RunConfig) -> str | None:
        from engine import estimator, fit
        from engine.models.errors import ModelSourceError

        try:
            spec = fit.spec_for(config.model)
        except ModelSourceError:
            return None  # the engine checks again with the loaded model
        targets = tuple(config.lora.target_modules) or estimator.TARGETS_ALL
        folder = Path(config.model).expanduser()
        tokenizer = disk.tokenizer_bytes(folder) if folder.is_dir() else 20 * 2**20
        need = disk.run_needs(estimator.lora_params(spec, config.lora.rank, targets), fit.settings_for(config).optimizer,
                              config.train.keep_checkpoints, tokenizer)
        return disk.shortfall(paths.runs_dir(), need)

    def _begin(self, arguments: list[str], message: str) -> None:
        if self.is_busy():
            return
        self.chart.clear()
        self.log.clear()
        self.run_dir = None
        self._paused = False
        self._last_state = ""
        self._retry = None
        self.retry_button.setVisible(False)
        self.status.setText(message)
        self.progress.setRange(0, 0)  # busy until the first progress event
        self.client.start(arguments, home=self.state.home)
        self._telemetry_timer.start()
        self.sig_running_changed.emit(True)
        self.state.sig_runs_changed.emit()

    def is_busy(self) -> bool:
        return self.client.is_running() or self.follower.is_following()

    def pause(self) -> None:
        self._send(protocol.Pause())

    def resume(self) -> None:
        self._send(protocol.Resume())

    def stop(self) -> None:
        if self.follower.is_following():
            self._stop_sent = self.follower.send(protocol.Stop())
        else:
            self.client.stop()
        self.status.setText("Stopping: saving a checkpoint at the next step…")
        self._update_buttons()

    def _send(self, msg) -> None:
        if self.follower.is_following():
            self.follower.send(msg)
        else:
            self.client.send(msg)

    def attach(self, run_dir: Path) -> bool:
        """Follow a run that an engine outside this window is training: live progress, pause, resume and stop."""
        if self.is_busy():
            return False
        self.chart.clear()
        self.log.clear()
        self._paused, self._last_state, self._stop_sent = False, "", False
        self.chart.set_points(*run_store.metrics(run_dir))
        if not self.follower.follow(run_dir):
            return False
        self.run_dir = Path(run_dir)
        self.current_run = self.run_dir.name
        self._log(f"following {self.run_dir.name}: its engine (process {self.follower.pid}) was started outside "
                  "this window and keeps running if the window closes")
        self.sig_running_changed.emit(True)
        self._update_buttons()
        return True

    def attach_running(self) -> str | None:
        """At start-up: follow the newest run a live engine is training, if any. Returns its name."""
        busy = [paths.runs_dir() / name for name, _ in runs.busy_runs()]
        busy.sort(key=lambda folder: (folder / "config.yaml").stat().st_mtime if (folder / "config.yaml").exists()
                  else 0)
        return busy[-1].name if busy and self.attach(busy[-1]) else None

    def _on_follow_ended(self) -> None:
        if self._last_state not in ("finished", "stopped", "failed"):
            self.status.setText("The engine stopped unexpectedly. The run can be resumed from its last checkpoint "
                                "on the Runs page.")
        self._update_buttons()
        self.sig_running_changed.emit(False)
        self.state.sig_runs_changed.emit()

    def show_run(self, run: run_store.RunSummary) -> None:
        """Show a finished or running run's curves from its folder; a running one is followed live."""
        if self.is_busy():
            return
        if run.status == "running" and self.attach(run.folder):
            return
        self.current_run = run.name
        self.chart.set_points(*run_store.metrics(run.folder))
        self.status.setText(f"Run {run.name}: {run.status}" + (f" — {run.error}" if run.error else ""))
        if run.total_steps:
            self.progress.setRange(0, run.total_steps)
            self.progress.setValue(run.steps)
            self.progress.setFormat(f"step {run.steps} / {run.total_steps}")

    # -- engine events ---------------------------------------------------------------------------------------
    def _dispatch(self, msg) -> None:
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(msg)

    def _on_engine_run_started(self, msg: protocol.RunStarted) -> None:
        self.run_dir = Path(msg.run_dir)
        self.current_run = self.run_dir.name
        self._log(f"run folder: {msg.run_dir}")

    def _on_engine_state(self, msg: protocol.State) -> None:
        self._paused = msg.state == "paused"
        self._last_state = msg.state
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
        if msg.retry and self.run_dir is not None:
            self._retry = (self.run_dir, dict(msg.retry))
            self.retry_button.setText("Retry from the last checkpoint with " + self._retry_text(msg.retry))
            self.retry_button.setVisible(True)

    @staticmethod
    def _retry_text(overrides: dict) -> str:
        labels = {"train.micro_batch": "micro-batch {}", "train.grad_accum": "gradient accumulation {}",
                  "train.gradient_checkpointing": "gradient checkpointing {}", "data.cutoff": "cutoff {} tokens",
                  "train.loss_chunk_tokens": "the loss {} tokens at a time",
                  "train.checkpoint_every": "checkpointing every {} layers",
                  "train.checkpoint_offload": "checkpoint offloading {}",
                  "train.fp32_frozen_layers": "fp32 frozen layers {}"}
        parts = []
        for key, value in overrides.items():
            value = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
            parts.append(labels.get(key, key + " = {}").format(value))
        return ", ".join(parts)

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
        running = self.is_busy()
        stopping = self.client.state == EngineState.STOPPING or (self.follower.is_following() and self._stop_sent)
        self.retry_button.setEnabled(not running)
        self.buttons["Start"].setEnabled(not running and bool(self.state.config.dataset))
        self.buttons["Pause"].setEnabled(running and not stopping and not self._paused)
        self.buttons["Resume"].setEnabled(running and self._paused)
        self.buttons["Stop"].setEnabled(running and not stopping)
        self.buttons["Load settings…"].setEnabled(not running)

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)
