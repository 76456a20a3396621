"""TrainController: everything the Train page does that is not drawing. Starting, resuming and retrying runs,
the checks before a start, pause / resume / stop, following a run started elsewhere, and turning the run's events
into what the page shows. The page (gui/pages/train_page.py) holds the widgets and subscribes to the signals here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from engine.light import config as run_config
from engine.light import disk, estimator, fit, gpu, paths, protocol
from engine.light.errors import ModelSourceError
from engine.light.run_folder import RunFolder, RunSummary, busy_runs
from engine.light.units import gib
from gui import progress_text
from gui.app_state import AppState
from gui.run_session import EngineSession, FollowedSession, RunSession, SessionEnd

OTHER_GPU_USE_BYTES = 512 * 2**20  # other programs' GPU memory worth a question before a start
STATE_LABELS = {"loading_model": "Loading the model…", "preparing_data": "Preparing the dataset…",
                "training": "Training", "paused": "Paused", "saving": "Saving…", "finished": "Finished",
                "comparing": "Comparing the fine-tune with the base model on the held-out examples…",
                "stopped": "Stopped — the run can be resumed from the Runs page", "failed": "Failed"}
OWN_WORDS = {"comparing"}  # states whose label says all; the engine's detail is for a terminal
RETRY_LABELS = {"train.micro_batch": "micro-batch {}", "train.grad_accum": "gradient accumulation {}",
                "train.gradient_checkpointing": "gradient checkpointing {}", "data.cutoff": "cutoff {} tokens",
                "train.loss_chunk_tokens": "the loss {} tokens at a time",
                "train.checkpoint_every": "checkpointing every {} layers",
                "train.checkpoint_offload": "checkpoint offloading {}",
                "train.fp32_frozen_layers": "fp32 frozen layers {}"}


class TrainController(QObject):
    """Signals: sig_message(object) for each event of the shown run; sig_status(str); sig_progress(value, maximum,
    text), maximum 0 meaning busy without a step count yet (training steps, then the comparison's answers);
    sig_chart_reset(train points, eval points); sig_train_point(step, loss); sig_eval_point(step, loss); sig_log(str);
    sig_log_reset(); sig_retry_offer(str), empty to withdraw it; sig_controls_changed(); sig_running_changed(bool);
    sig_ended(SessionEnd)."""

    sig_message = Signal(object)
    sig_status = Signal(str)
    sig_progress = Signal(int, int, str)
    sig_chart_reset = Signal(list, list)
    sig_train_point = Signal(int, float)
    sig_eval_point = Signal(int, float)
    sig_log = Signal(str)
    sig_log_reset = Signal()
    sig_retry_offer = Signal(str)
    sig_controls_changed = Signal()
    sig_running_changed = Signal(bool)
    sig_ended = Signal(object)

    def __init__(self, state: AppState, parent: QObject | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self.engine_command = engine_command
        self.session: RunSession | None = None
        self.current_run: str | None = None  # the run shown (running, finished or opened from the Runs page)
        self.ask: Callable[[str, str], bool] = lambda title, text: False  # the page asks the user
        self._pausing = False  # a pause was asked for and has not taken effect yet
        self._paused: RunFolder | None = None  # the shown run is paused: its engine exited at a checkpoint
        self._error = ""  # the last error of the shown run, kept in the status once the run has failed
        self._retry: tuple[RunFolder, dict] | None = None
        self.last_progress = ""  # the progress text last shown ("Step 12 of 60 · about 3 min left")
        self.comparing = False  # the engine is comparing the fine-tune with the base model (Skip may end it)
        self._skipping = False
        self._compared: protocol.CompareProgress | None = None  # the comparison's last progress, if it began
        self._trained: tuple[int, int] | None = None  # the last training step and the steps planned
        self.comparison_estimate_s: float | None = None  # the time trial's estimate of the comparison, if any
        self._last_loss: float | None = None  # the last step's training loss of the shown run
        self._losses = ""  # the finished run's losses, named, for its status line
        self.sig_progress.connect(self._remember_progress)
        self._handlers = {
            protocol.RunStarted: self._on_run_started, protocol.State: self._on_state,
            protocol.Progress: self._on_progress,
            protocol.Eval: lambda e: self.sig_eval_point.emit(e.step, e.eval_loss),
            protocol.CheckpointSaved: lambda c: self.sig_log.emit(f"checkpoint saved at step {c.step}"),
            protocol.Log: lambda m: self.sig_log.emit(m.message),
            protocol.Warning: lambda w: self.sig_log.emit(f"warning: {w.message} ({w.hint})"),
            protocol.Error: self._on_error, protocol.Finished: self._on_finished,
            protocol.CompareProgress: self._on_compare_progress,
        }

    # ---- what the page asks ----------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self.session is not None and self.session.is_active()

    @property
    def run_folder(self) -> RunFolder | None:
        return self.session.folder if self.session is not None else None

    def controls(self) -> dict[str, bool]:
        """Which of the page's buttons may be pressed now."""
        running = self.is_busy()
        stopping = running and self.session.is_stopping()
        comparing = running and self.comparing
        return {"Start": not running and bool(self.state.config.dataset),
                "Pause": running and not stopping and not self._pausing and not comparing,
                "Resume": (running and self._pausing) or (not running and self._paused is not None),
                "Stop": running and not stopping,
                "Load settings…": not running, "Retry": not running and self._retry is not None,
                "Skip comparison": comparing and not stopping and not self._skipping}

    # ---- starting runs ---------------------------------------------------------------------------------------
    def start(self, config: run_config.RunConfig) -> bool:
        """Start a new run with ``config`` (already validated) after the checks; False if it did not start."""
        if self.is_busy() or not self._preflight(config):
            return False
        pending = paths.cache_dir("gui") / "pending-run.yaml"
        run_config.save(config, pending)
        self._begin(["train", "--json", str(pending)], f"Starting: {config.model} on {Path(config.dataset).name}")
        return True

    def resume_run(self, run: RunSummary) -> None:
        self.show_run(run)
        try:
            config = run.folder.load_config()
        except run_config.ConfigError as exc:
            self.sig_status.emit(f"Cannot resume {run.name}: " + "; ".join(exc.problems))
            return
        if not self.is_busy() and self._preflight(config):
            self._begin(["train", "--json", "--resume", str(run.folder.path)], f"Resuming {run.name}",
                        points=run.folder.loss_points())

    def retry(self) -> None:
        """Resume the run that ran out of memory, with the settings the engine proposed."""
        if self._retry is None or self.is_busy():
            return
        folder, overrides = self._retry
        sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
        self._begin(["train", "--json", "--resume", str(folder.path), *sets],
                    f"Retrying {folder.name} from its last checkpoint with " + retry_text(overrides),
                    points=folder.loss_points())

    def attach(self, folder: RunFolder) -> bool:
        """Follow a run that an engine outside this window is training: live progress, pause, resume and stop."""
        if self.is_busy():
            return False
        session = FollowedSession(folder, self)
        self._reset_view(folder.loss_points())
        self._connect(session)
        if not session.start():
            self._disconnect(session)
            return False
        self.current_run = folder.name
        self.sig_log.emit(f"following {folder.name}: its engine (process {session.pid}) was started outside this "
                          "window and keeps running if the window closes")
        self.sig_running_changed.emit(True)
        self.sig_controls_changed.emit()
        return True

    def attach_running(self) -> str | None:
        """At start-up: follow the newest run a live engine is training, if any. Returns its name."""
        busy = sorted((folder for folder, _ in busy_runs()), key=lambda f: f.config_file.stat().st_mtime)
        return busy[-1].name if busy and self.attach(busy[-1]) else None

    def show_run(self, run: RunSummary) -> None:
        """Show a finished or running run's curves from its folder; a running one is followed live."""
        if self.is_busy() or (run.status == "running" and self.attach(run.folder)):
            return
        self.current_run = run.name
        self._paused = run.folder if run.status == "paused" else None  # Resume continues it
        self.sig_chart_reset.emit(*run.folder.loss_points())
        self.sig_status.emit(f"Run {run.name}: {run.status}" + (f" — {run.error}" if run.error else ""))
        if run.total_steps:
            self.sig_progress.emit(run.steps, run.total_steps, f"step {run.steps} / {run.total_steps}")
        self.sig_controls_changed.emit()

    # ---- commands to the running engine ------------------------------------------------------------------------
    def pause(self) -> None:
        """Save a checkpoint at the next step and end the engine, so the GPU is free until Resume."""
        if self.is_busy() and self.session.send(protocol.Pause()):
            self._pausing = True
            self.sig_status.emit("Pausing: saving a checkpoint at the next step, then freeing the GPU…")
            self.sig_controls_changed.emit()

    def resume(self) -> None:
        """Call off a pause not yet reached, or continue a paused run from its checkpoint with a new engine."""
        if self.is_busy():
            if self._pausing and self.session.send(protocol.Resume()):
                self._pausing = False
                self.sig_status.emit("Training")
                self.sig_controls_changed.emit()
            return
        if self._paused is not None:
            folder = self._paused
            self._begin(["train", "--json", "--resume", str(folder.path)], f"Resuming {folder.name}",
                        points=folder.loss_points())

    def skip_comparison(self) -> None:
        """End the comparison with the base model after the answer under way; the run finishes with its adapter."""
        if self.is_busy() and self.comparing and self.session.send(protocol.SkipComparison()):
            self._skipping = True
            self.sig_status.emit("Skipping the comparison: the run finishes after the answer under way…")
            self.sig_log.emit("asked to skip the comparison with the base model")
            self.sig_controls_changed.emit()

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.sig_status.emit("Stopping: saving a checkpoint at the next step…")
            self.sig_controls_changed.emit()

    def kill(self) -> None:
        if self.session is not None:
            self.session.kill()

    # ---- internals -------------------------------------------------------------------------------------------
    def _remember_progress(self, _value: int, _maximum: int, text: str) -> None:
        self.last_progress = text

    def _preflight(self, config: run_config.RunConfig) -> bool:
        """Refuse a start the disk cannot hold; ask before sharing the GPU with another run or program."""
        problem = disk_problem(config)
        if problem:
            self.sig_status.emit(f"Cannot start: {problem}.\nFree disk space (delete old runs on the Runs page) or "
                                 "choose a data folder on a larger disk.")
            return False
        busy = [f"the LlamaDesk run {folder.name} (process {pid})" for folder, pid in busy_runs()]
        self.state.gpu.refresh()  # a fresh reading: the user is about to claim the GPU
        probe = self.state.gpu.wait()
        card = gpu.training_gpu(probe) if probe is not None and probe.available else None
        if card is not None:
            if card.other_processes_bytes() > OTHER_GPU_USE_BYTES:
                busy.append(f"other programs holding {gib(card.other_processes_bytes())} of {card.name}")
        if not busy:
            return True
        return self.ask("The GPU is busy", "The GPU is in use by " + " and ".join(busy) + ".\n\nTwo jobs on one GPU "
                        "are each slower and either may run out of memory. Start anyway?")

    def _begin(self, arguments: list[str], message: str, *, points=([], [])) -> None:
        """Start an engine; ``points``: the curve so far, for a resumed run whose chart goes on."""
        session = EngineSession(self, command=self.engine_command)
        self._reset_view(points)
        self._connect(session)
        self.sig_status.emit(message)
        self.sig_progress.emit(0, 0, "")  # busy until the first progress event
        session.start(arguments, home=self.state.home)
        self.sig_running_changed.emit(True)
        self.state.sig_runs_changed.emit()
        self.sig_controls_changed.emit()

    def _reset_view(self, points) -> None:
        self.sig_chart_reset.emit(*points)
        self.sig_log_reset.emit()
        self._pausing, self._paused = False, None
        self.comparing = self._skipping = False
        self._compared, self._trained = None, None
        self._last_loss, self._losses = None, ""
        self._retry = None
        self._error = ""
        self.sig_retry_offer.emit("")

    def _connect(self, session: RunSession) -> None:
        if self.session is not None:
            self._disconnect(self.session)
        self.session = session
        session.sig_message.connect(self._on_session_message)
        session.sig_ended.connect(self._on_session_ended)

    def _disconnect(self, session: RunSession) -> None:
        session.sig_message.disconnect(self._on_session_message)
        session.sig_ended.disconnect(self._on_session_ended)
        if session is self.session:
            self.session = None
        session.deleteLater()

    def _on_session_message(self, msg) -> None:
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(msg)
        self.sig_message.emit(msg)

    def _on_run_started(self, msg: protocol.RunStarted) -> None:
        self.current_run = Path(msg.run_dir).name
        self.sig_log.emit(f"run folder: {msg.run_dir}")
        self.state.sig_runs_changed.emit()  # the folder exists now: the Runs page can list it

    def _on_state(self, msg: protocol.State) -> None:
        if msg.state == "paused":
            self._pausing = False
        self.comparing = msg.state == "comparing"
        text = STATE_LABELS.get(msg.state, msg.state.replace("_", " ").capitalize())
        if msg.state == "finished":
            text = finished_text(self._losses, msg.detail)
            self._end_progress()
        elif msg.detail and msg.state not in OWN_WORDS:
            text += f" ({msg.detail})"
        if msg.state == "failed" and self._error:
            text += f": {self._error}"  # the reason stays in view after the run ends
        self.sig_status.emit(text)
        self.sig_controls_changed.emit()

    def _on_progress(self, msg: protocol.Progress) -> None:
        self.sig_progress.emit(msg.step, msg.total_steps, progress_text.step_text(msg.step, msg.total_steps,
                                                                                  msg.eta_s))
        self._trained = (msg.step, msg.total_steps)
        if msg.loss is not None:
            self._last_loss = msg.loss
            self.sig_train_point.emit(msg.step, msg.loss)
        parts = [f"loss {msg.loss:.4f}" if msg.loss is not None else "",
                 f"learning rate {progress_text.number(msg.learning_rate)}" if msg.learning_rate is not None else "",
                 f"{msg.tokens_per_s:,.0f} tokens a second" if msg.tokens_per_s else ""]
        self.sig_status.emit("Training: " + " · ".join(p for p in parts if p))

    def _end_progress(self) -> None:
        """The bar of a finished run: its training steps again, and what became of the comparison (not an answer
        that was under way)."""
        done = self._compared
        if done is None:
            return
        what = "comparison with the base model skipped" if done.done < done.total else "compared with the base model"
        step, total = self._trained or (done.done, done.total)
        self.sig_progress.emit(step, total, progress_text.step_text(step, total, None) + f" · {what}"
                               if self._trained else what[:1].upper() + what[1:])

    def _on_compare_progress(self, msg: protocol.CompareProgress) -> None:
        text = progress_text.compare_text(msg, self.comparison_estimate_s)
        if not self.comparing:  # a followed run's history, or an engine that reports no "comparing" state first
            self.comparing = True
            self.sig_controls_changed.emit()
        self._compared = msg
        self.sig_progress.emit(msg.done, msg.total, text)
        self.sig_log.emit(text)

    def _on_error(self, msg: protocol.Error) -> None:
        self.sig_log.emit(f"error: {msg.message}")
        self._error = msg.message + (f"\n→ {msg.hint}" if msg.hint else "")
        self.sig_status.emit(f"Error: {self._error}")
        if msg.retry and self.run_folder is not None:
            self._retry = (self.run_folder, dict(msg.retry))
            self.sig_retry_offer.emit("Retry with " + retry_text(msg.retry))  # from the last checkpoint: its tooltip

    def _on_finished(self, msg: protocol.Finished) -> None:
        self.current_run = Path(msg.run_dir).name
        self._losses = progress_text.loss_summary(msg.metrics.get("train_loss"),
                                                  msg.metrics.get("last_loss", self._last_loss))
        self.sig_log.emit(f"finished: adapter saved in {msg.adapter_path}" + (f" · {self._losses}" if self._losses
                                                                                else ""))

    def _on_session_ended(self, end: SessionEnd) -> None:
        if self.session is not None and self.session.last_state == "paused":
            self._paused = self.session.folder  # Resume starts a new engine from its checkpoint
        if end.crashed:
            code = f" (exit status {end.exit_code})" if end.exit_code is not None else ""
            self.sig_status.emit(f"The engine stopped unexpectedly{code}. The run can be resumed from its last "
                                 f"checkpoint on the Runs page." + (f"\n{end.output_tail}" if end.output_tail else ""))
        self.sig_controls_changed.emit()
        self.sig_running_changed.emit(False)
        self.state.sig_runs_changed.emit()
        self.sig_ended.emit(end)


def finished_text(losses: str, detail: str) -> str:
    """"Finished: average training loss 0.78 · last 0.049." and what the engine added (a skipped comparison), as
    sentences."""
    text = f"Finished: {losses}." if losses else "Finished."
    return f"{text} {detail[:1].upper()}{detail[1:]}." if detail else text


def retry_text(overrides: dict) -> str:
    parts = []
    for key, value in overrides.items():
        value = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
        parts.append(RETRY_LABELS.get(key, key + " = {}").format(value))
    return ", ".join(parts)


def disk_problem(config: run_config.RunConfig) -> str | None:
    """What the run's checkpoints and adapter need against the free space, before a start."""
    try:
        spec = fit.spec_for(config.model)
    except ModelSourceError:
        return None  # the engine checks again with the loaded model
    folder = Path(config.model).expanduser()
    tokenizer = disk.tokenizer_bytes(folder) if folder.is_dir() else 20 * 2**20
    need = disk.run_needs(estimator.lora_params(spec, config.lora.rank, estimator.target_modules(config)),
                          estimator.optimizer_name(config), config.train.keep_checkpoints, tokenizer)
    return disk.shortfall(paths.runs_dir(), need)
