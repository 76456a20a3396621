"""How long will the run take? A short trial on this machine with the run's own settings and data.

The trial goes through the steps a run goes through, each timed: tokenizer, data and model loading; a few optimizer
steps (the first left out: it carries one-time warm-up costs); one evaluation pass over the validation split; and a
few greedy tokens with and without the adapter. From those the whole run is extrapolated: its number of steps (from
the data's size, the batch and the epochs, or ``train.max_steps``), the evaluations the schedule makes, and the
closing comparison with the base model. It trains in a temporary folder, never in the runs folder, and keeps
nothing.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from engine.heavy import before_after
from engine.heavy import device as devices
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.run_inputs import model_dir_for, prepare_data
from engine.heavy.train_setup import build_trainer, load_model, tokenizer_for
from engine.light import protocol, ranks
from engine.light.config import RunConfig
from engine.light.run_folder import RunFolder

TRIAL_STEPS = 3  # measured steps, after one warm-up step
PROBE_TOKENS = 8  # greedy tokens generated per side to time generation


class _StepClock(Emitter):
    """Forwards what the user should see and notes when each optimizer step ended."""

    def __init__(self, out: Emitter):
        super().__init__(None)
        self.out = out
        self.step_ends: list[float] = []

    def emit(self, msg) -> None:
        if isinstance(msg, protocol.Progress):
            self.step_ends.append(time.monotonic())
            self.out.emit(protocol.State("timing", f"trial step {msg.step} of {msg.total_steps}"))
        elif isinstance(msg, (protocol.Log, protocol.Warning)):
            self.out.emit(msg)


def planned_steps(config: RunConfig, train_rows: int) -> int:
    """The optimizer steps the run will make: ``max_steps``, or the epochs over the training split (shared by the
    ranks, with several GPUs: each step takes a micro-batch from each)."""
    if config.train.max_steps > 0:
        return config.train.max_steps
    per_rank = math.ceil(train_rows / ranks.world_size(config))
    per_epoch = math.ceil(math.ceil(per_rank / config.train.micro_batch) / config.train.grad_accum)
    return max(1, math.ceil(per_epoch * config.train.epochs))


def planned_evaluations(config: RunConfig, steps: int, has_validation: bool) -> int:
    if not has_validation:
        return 0
    if config.train.eval_steps > 0:
        return steps // config.train.eval_steps
    return max(1, math.ceil(config.train.epochs)) if config.train.max_steps <= 0 else 1


def run(config: RunConfig, *, emitter: Emitter, control: Control, steps: int = TRIAL_STEPS) -> protocol.TimeEstimate:
    started = time.monotonic()
    device = devices.resolve_device(config.device)
    dtype = devices.compute_dtype(config.compute_dtype, device)
    model_dir = model_dir_for(config, emitter)
    tokenizer = tokenizer_for(model_dir)
    train_set, eval_set = prepare_data(config, tokenizer, emitter)
    has_validation = eval_set is not None and len(eval_set) > 0
    trial = config.with_values({"train.max_steps": steps + 1, "train.save_steps": 1_000_000, "train.report_to": [],
                                "train.logging_steps": 1, "train.eval_steps": 0,
                                # one rank is timed: the others take the same time for their share, side by side
                                "distributed.gpus": config.distributed.gpus[:1], "distributed.cpu_processes": 1})
    work = Path(tempfile.mkdtemp(prefix="llamadesk-time-trial-"))
    try:
        folder = RunFolder.create("trial", root=work)
        model = load_model(model_dir, trial, device, dtype)
        clock = _StepClock(emitter)
        trainer, callback = build_trainer(model, tokenizer, train_set, None, trial, folder, clock, control, device,
                                          dtype)
        setup_s = time.monotonic() - started
        emitter.emit(protocol.State("timing", f"{steps + 1} trial steps"))
        try:
            trainer.train()
            ends = list(clock.step_ends)
            eval_s = _time_evaluation(trainer, eval_set, emitter) if has_validation else 0.0
        finally:
            callback.close()
        step_s = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan")
        token_s = _time_generation(trainer.model, tokenizer, eval_set or train_set, emitter)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _estimate(config, train_rows=len(train_set), validation=eval_set, setup_s=setup_s, step_s=step_s,
                     eval_s=eval_s, token_s=token_s, trial_s=time.monotonic() - started)


def _time_evaluation(trainer, eval_set, emitter: Emitter) -> float:
    emitter.emit(protocol.State("timing", "one evaluation pass"))
    began = time.monotonic()
    trainer.evaluate(eval_set)
    return time.monotonic() - began


def _time_generation(model, tokenizer, rows, emitter: Emitter) -> float:
    """Seconds per greedy token, from a few tokens with the adapter on and off (as the comparison generates)."""
    emitter.emit(protocol.State("timing", "generation speed"))
    turn = next((t for t in (before_after.first_turn(dict(row)) for row in rows) if t is not None), None)
    if turn is None:
        return 0.0
    model.eval()
    ids = torch.tensor([turn[0]], device=model.device)
    began = time.monotonic()
    for adapter in (False, True):
        with before_after.adapter_on(model, adapter), torch.no_grad():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           min_new_tokens=PROBE_TOKENS, max_new_tokens=PROBE_TOKENS,
                           pad_token_id=tokenizer.pad_token_id)
    return (time.monotonic() - began) / (2 * PROBE_TOKENS)


def _estimate(config: RunConfig, *, train_rows: int, validation, setup_s: float, step_s: float, eval_s: float,
              token_s: float, trial_s: float) -> protocol.TimeEstimate:
    steps = planned_steps(config, train_rows)
    evaluations = planned_evaluations(config, steps, validation is not None and len(validation) > 0)
    compare_s = 0.0
    if config.train.compare_base and validation is not None and len(validation) > 0:
        turns = [t for t in (before_after.first_turn(dict(row)) for row in validation) if t is not None]
        turns = turns[:config.train.compare_prompts]
        generated = sum(min(before_after.MAX_NEW_TOKENS, 2 * len(reference) + 16) for _, reference in turns)
        compare_s = 2 * eval_s + 2 * generated * token_s  # a loss pass per side, then both sides answer
    parts = {"loading": setup_s, "training": steps * step_s, "evaluation": evaluations * eval_s,
             "comparison": compare_s}
    return protocol.TimeEstimate(seconds=sum(parts.values()), steps=steps, step_s=step_s, parts=parts,
                                 trial_s=trial_s)
