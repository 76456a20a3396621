"""One of two CPU ranks set up for FSDP with QLoRA the way a GPU rank is, up to where FSDP itself would start (it
needs CUDA GPUs, and never runs here): joins the ranks' process group, loads the 4-bit model through the engine's
``load_model`` while noting what accelerate's environment held when ``from_pretrained`` was called, makes the
Trainer's arguments, and writes what it saw as JSON. The launcher's variables (RANK, WORLD_SIZE,
LLAMADESK_RENDEZVOUS_FILE, LLAMADESK_STRATEGY) come from the caller.

    python tests/fsdp_setup.py MODEL_FOLDER RUN_FOLDER REPORT.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bitsandbytes as bnb
import torch
from transformers import AutoModelForCausalLM

from engine.heavy import distributed, train_setup
from engine.light.run_folder import RunFolder

# What transformers reads to load a model for FSDP (transformers.distributed.fsdp.is_fsdp_enabled)
FSDP_LOADING = ("ACCELERATE_USE_FSDP", "FSDP_CPU_RAM_EFFICIENT_LOADING")
seen: dict = {}
_load = AutoModelForCausalLM.from_pretrained.__func__


def _noting_the_environment(cls, *args, **kwargs):
    seen.update({name: os.environ.get(name) for name in FSDP_LOADING})
    return _load(cls, *args, **kwargs)


def _checkpoints_activations(model) -> bool:
    if hasattr(model, "is_activation_checkpointing"):  # transformers 5.23 and later
        return model.is_activation_checkpointing
    return model.is_gradient_checkpointing


def main(model_dir: Path, run_dir: Path, report: Path) -> None:
    AutoModelForCausalLM.from_pretrained = classmethod(_noting_the_environment)
    folder = RunFolder(run_dir)
    config = folder.load_config()
    distributed.join("cpu")
    try:
        model = train_setup.load_model(model_dir, config, "cpu", torch.float32)
        args = train_setup.training_arguments(config, folder, "cpu", torch.float32, has_eval=False)
        report.write_text(json.dumps({
            "sharded": distributed.sharded(),
            "environment_at_load": seen,
            "model_checkpoints_activations": _checkpoints_activations(model.get_base_model()),
            "4-bit weights stored as": sorted({str(m.weight.dtype) for m in model.modules()
                                              if isinstance(m, bnb.nn.Linear4bit)}),
            "fsdp_plugin_args": {k: v if isinstance(v, (bool, int, str)) else str(v)
                                 for k, v in args.fsdp_plugin_args.items()},
            "trainer_activation_checkpointing": args.activation_checkpointing,
        }), encoding="utf-8")
    finally:
        distributed.leave()


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]))
