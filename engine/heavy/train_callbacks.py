"""The Trainer callback that connects a training run to its client and its run folder.

It turns Trainer logs into protocol events and metrics.jsonl lines, honours stop and pause at step boundaries (both
save a checkpoint and end the run; a paused run's engine exits so the GPU is free, and resuming starts it again from
that checkpoint), and makes checkpoints atomic: Trainer writes ``checkpoint-N``, and only once it is complete and synced is it renamed to
``step-N`` (the only name resume looks for).

With several ranks every rank runs this callback: all of them agree on stopping at each step boundary, and only rank 0
reports and writes the run folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from engine.heavy import distributed
from engine.light import gpu, protocol
from engine.light.run_folder import RunFolder


class EngineCallback(TrainerCallback):
    def __init__(self, *, emitter, control, folder: RunFolder, collator, device: str, config):
        self.emitter, self.control, self.folder = emitter, control, folder
        self.collator, self.device, self.config = collator, device, config
        self.main = distributed.is_main()  # rank 0, or the only process: reports and writes the run folder
        self.metrics = folder.open_metrics() if self.main else None
        self._parent = os.getppid()  # a rank whose launcher died saves and stops (see on_step_end)
        # The training GPUs' energy (rank 0 reads every selected GPU); none on the CPU.
        self.energy = gpu.EnergyMeter() if device == "cuda" and self.main else None
        self._earlier_wh = 0.0
        self.keep = config.train.keep_checkpoints
        self.stopped_by_user = False
        self.paused_by_user = False
        self.diverged_at: int | None = None  # the step whose loss was NaN or infinite
        self.trainer = None  # the EngineTrainer, whose every step's loss is checked
        self.last_logs: dict = {}
        self._start = self._window_start = time.monotonic()
        self._first_step = 0
        self._window_tokens = 0
        self._earlier_s = 0.0  # training time of the sessions before this one (a resumed run's clock goes on)

    # -- progress ----------------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._window_start = time.monotonic()
        self._first_step = state.global_step
        earlier = [m["elapsed_s"] for m in self.folder.metrics() if m.get("elapsed_s") is not None
                   and m.get("step", 0) <= state.global_step]
        self._earlier_s = earlier[-1] if earlier else 0.0
        drawn = [m["energy_wh"] for m in self.folder.metrics() if m.get("energy_wh") is not None
                 and m.get("step", 0) <= state.global_step]
        self._earlier_wh = drawn[-1] if drawn else 0.0
        if self.energy is not None:
            self.energy.sample(time.monotonic())
        self._window_tokens = distributed.total(self.collator.real_tokens, args.device)
        self.emitter.emit(protocol.State("training", f"{state.max_steps} steps"))

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        step = state.global_step
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            # Stop before this step's weights can be saved: the last checkpoint stays the last good one.
            self.diverged_at = step
            control.should_save = False
            control.should_training_stop = True
        memory = self._memory(args) if "loss" in logs else None  # every rank takes part: the largest peak counts
        tokens = distributed.total(self.collator.real_tokens, args.device) if "loss" in logs else 0  # all ranks'
        if not self.main:
            self.last_logs.update(logs)
            return
        if "loss" in logs:
            now = time.monotonic()
            window = now - self._window_start
            speed = (tokens - self._window_tokens) / window if window > 0 else None
            self._window_start, self._window_tokens = now, tokens
            session = now - self._start
            elapsed = self._earlier_s + session
            done = step - self._first_step
            eta = (state.max_steps - step) * session / done if done > 0 else None
            event = protocol.Progress(step=step, total_steps=state.max_steps, epoch=round(state.epoch or 0.0, 4),
                                      loss=logs.get("loss"), learning_rate=logs.get("learning_rate"),
                                      grad_norm=logs.get("grad_norm"), tokens_per_s=speed, elapsed_s=elapsed,
                                      eta_s=eta)
            self.emitter.emit(event)
            line = {"step": step, "epoch": event.epoch, "loss": event.loss, "learning_rate": event.learning_rate,
                    "grad_norm": event.grad_norm, "tokens_per_s": speed, "elapsed_s": round(elapsed, 3)}
            drawn = self.energy.sample(now) if self.energy is not None else None
            if drawn is not None:
                line["energy_wh"] = round(self._earlier_wh + drawn, 4)
            self.metrics.write(line)
            if memory is not None:
                self.emitter.emit(protocol.Memory(step=step, allocated_peak_bytes=memory[0],
                                                  reserved_peak_bytes=memory[1]))
        if "eval_loss" in logs:
            self.emitter.emit(protocol.Eval(step=step, eval_loss=logs["eval_loss"]))
            self.metrics.write({"step": step, "epoch": round(state.epoch or 0.0, 4), "eval_loss": logs["eval_loss"]})
        self.last_logs.update(logs)

    def _memory(self, args) -> list[int] | None:
        """The GPU memory peaks (allocated, reserved): the largest of any rank's GPU."""
        if self.device != "cuda":
            return None
        return distributed.agree([torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()], args.device)

    # -- stop and pause at step boundaries --------------------------------------------------------------------
    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True  # the last step is always reported: the run ends at "54 of 54", its final loss
        nonfinite = self.trainer is not None and self.trainer.step_was_nonfinite()
        stop, pause = self.control.stop.is_set(), self.control.pause.is_set()
        if distributed.active():  # every rank takes the same decision at the same step
            orphaned = os.getppid() != self._parent  # the launcher was killed: save, and end with the others
            nonfinite, stop, pause = map(bool, distributed.agree([nonfinite, stop or orphaned, pause], args.device))
        if nonfinite and self.diverged_at is None:
            # Every step, logged or not: stop before this step's weights can be saved.
            self.diverged_at = state.global_step
            control.should_save = False
            control.should_training_stop = True
            return control
        if stop or pause:
            # Both save a checkpoint and end the run here; a pause is resumed from that checkpoint by a new engine,
            # so that nothing of this one (weights, adapters, optimizer state) holds the GPU meanwhile.
            self.paused_by_user = not stop
            self.stopped_by_user = not self.paused_by_user
            control.should_save = True
            control.should_training_stop = True
            word = "pausing" if self.paused_by_user else "stopping"
            self.emitter.emit(protocol.State("saving", f"{word} at step {state.global_step}"))
        return control

    # -- atomic checkpoints -----------------------------------------------------------------------------------
    def on_save(self, args, state, control, **kwargs):
        distributed.barrier()  # every rank has written its part (its RNG state) before rank 0 publishes the folder
        written = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not self.main or not written.is_dir():
            return
        (written / "llamadesk.json").write_text(json.dumps({
            "step": state.global_step, "epoch": state.epoch, "config": self.config.to_dict(),
            "metrics": {k: v for k, v in self.last_logs.items() if isinstance(v, (int, float))},
        }, indent=2), encoding="utf-8")
        final = self.folder.publish_checkpoint(written, state.global_step)
        self.emitter.emit(protocol.CheckpointSaved(step=state.global_step, path=str(final)))
        self.folder.prune_checkpoints(self.keep)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
