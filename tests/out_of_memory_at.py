"""Runs the engine (same arguments as ``python -m engine``) so that optimizer step $LLAMADESK_TEST_OOM_STEP raises
CUDA's out-of-memory error while the micro-batch is above $LLAMADESK_TEST_OOM_ABOVE: a real engine process that
runs out of memory the way a GPU would, and fits once the micro-batch is lowered. The error comes where the step
takes its batches and first allocates on the GPU, before the step's first collective (the ranks' token count).

With several ranks, $LLAMADESK_TEST_OOM_RANK names the rank that runs out of memory, and the ranks run this script
too (the launcher's RANK_PROGRAM). When the step before saves a checkpoint, that rank fails right after the save, and
the worst interleaving is pinned instead of left to chance: rank 0 publishes that checkpoint only once the failing
rank has recorded its failure (whatever it does on failing is done by then), and the failing rank exits only once
rank 0 has published it or failed (else the launcher might stop rank 0 first)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from engine.heavy.trainer import EngineTrainer
from engine.light.run_folder import RunFolder

STEP = int(os.environ["LLAMADESK_TEST_OOM_STEP"])
ABOVE = int(os.environ["LLAMADESK_TEST_OOM_ABOVE"])
RANK = os.environ.get("LLAMADESK_TEST_OOM_RANK")  # unset: one process
WAIT_S = 120.0
_take_batches = EngineTrainer.get_batch_samples
_publish = RunFolder.publish_checkpoint


def _this_rank() -> int:
    return int(os.environ.get("RANK", 0))


def _get_batch_samples(self, epoch_iterator, num_batches, device):
    if (self.state.global_step + 1 == STEP and self.args.per_device_train_batch_size > ABOVE
            and (RANK is None or _this_rank() == int(RANK))):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return _take_batches(self, epoch_iterator, num_batches, device)


def _failed(folder: RunFolder, rank: int) -> bool:
    return any(f.get("rank") == rank for f in folder.rank_failures())


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"out_of_memory_at.py: waited {WAIT_S:.0f} s for {what}")
        time.sleep(0.05)


def _publish_once_the_rank_failed(self, written, step):
    if step == STEP - 1 and _this_rank() == 0:
        _wait_until(lambda: _failed(self, int(RANK)), f"rank {RANK} to record its failure")
    return _publish(self, written, step)


EngineTrainer.get_batch_samples = _get_batch_samples
if RANK is not None:
    from engine.heavy import rank_launcher

    rank_launcher.RANK_PROGRAM = (str(Path(__file__).resolve()),)
    RunFolder.publish_checkpoint = _publish_once_the_rank_failed

from engine.cli import main  # noqa: E402 - after the patch

argv = sys.argv[1:]
code = main(argv)
if RANK is not None and "rank" in argv and _this_rank() == int(RANK):
    run = RunFolder(Path(argv[argv.index("rank") + 1]))
    _wait_until(lambda: (run.latest_checkpoint() or (0, None))[0] >= STEP - 1 or _failed(run, 0),
                f"rank 0 to publish step {STEP - 1}")
sys.exit(code)
