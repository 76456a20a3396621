"""Runs the engine (same arguments as ``python -m engine``) so that optimizer step $LLAMADESK_TEST_OOM_STEP raises
CUDA's out-of-memory error while the micro-batch is above $LLAMADESK_TEST_OOM_ABOVE: a real engine process that
runs out of memory the way a GPU would, and fits once the micro-batch is lowered."""

from __future__ import annotations

import os
import sys

import torch

from engine.heavy.trainer import EngineTrainer

STEP = int(os.environ["LLAMADESK_TEST_OOM_STEP"])
ABOVE = int(os.environ["LLAMADESK_TEST_OOM_ABOVE"])
_step = EngineTrainer.training_step


def _training_step(self, model, inputs, num_items_in_batch=None):
    if self.state.global_step + 1 == STEP and self.args.per_device_train_batch_size > ABOVE:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return _step(self, model, inputs, num_items_in_batch)


EngineTrainer.training_step = _training_step

from engine.cli import main  # noqa: E402 - after the patch

sys.exit(main(sys.argv[1:]))
