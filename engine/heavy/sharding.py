"""FSDP with QLoRA, set up as PEFT's FSDP-QLoRA guide does (peft docs: accelerate/fsdp.md), for the ranks of a run
whose weights are sharded (``distributed.sharded()``); nothing here applies to DDP or to one process.

The order matters. transformers decides how to load a model for FSDP from accelerate's environment
(``ACCELERATE_USE_FSDP``, ``FSDP_CPU_RAM_EFFICIENT_LOADING``), which accelerate sets only when the Trainer's
arguments are made, after the model is loaded: so each rank would load the whole model first. ``before_loading``
sets it before ``from_pretrained``. Checkpoints are sharded (each rank saves its own part, none gathers the whole);
the finished adapter is gathered whole once (``save_whole_adapter``). FSDP checkpoints the activations of the layers
it wraps itself; the model's own checkpointing would gather every layer's weights a second time in the backward pass.

The CUDA path is unverified until bench/multi_gpu.sh has run on two GPUs.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.heavy import device as devices
from engine.heavy import distributed

# What transformers' from_pretrained reads to load for FSDP (transformers.distributed.fsdp.is_fsdp_enabled).
LOADING_ENVIRONMENT = {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}


def before_loading() -> None:
    """Put accelerate's FSDP environment in place; call before ``from_pretrained``."""
    if distributed.sharded():
        os.environ.update(LOADING_ENVIRONMENT)


def optimizer(requested: str, device: str) -> str:
    """The optimizer the Trainer makes. Under FSDP ``auto`` is plain AdamW: an 8-bit AdamW's state cannot be saved
    in an FSDP checkpoint (the guide's caveats; bitsandbytes issue 89). Otherwise the device's usual choice."""
    if requested == "auto" and distributed.sharded():
        return "adamw_torch"
    return devices.optimizer(requested, device)


def model_checkpoints_activations(train) -> bool:
    """Whether the model checkpoints its own activations: never under FSDP, which does it (``training_arguments``)."""
    return train.gradient_checkpointing and not distributed.sharded()


def training_arguments(train) -> dict:
    """The Trainer's FSDP arguments, as PEFT's FSDP-QLoRA guide has them; nothing without sharding."""
    if not distributed.sharded():
        return {}
    return {"fsdp": True,
            "fsdp_config": {
                # FSDP1, whose flat parameters hold the 4-bit weights stored in the compute dtype (the guide's path);
                # use_orig_params False wraps the LoRA weights apart from the frozen ones (the Trainer asks PEFT)
                "version": 1, "reshard_after_forward": "full_shard", "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "backward_prefetch": "backward_pre", "forward_prefetch": False, "use_orig_params": False,
                # rank 0 reads the weights, the others receive them
                "cpu_ram_efficient_loading": True, "sync_module_states": True,
                "state_dict_type": "SHARDED_STATE_DICT",  # checkpoints: each rank writes its shard
                # every wrapped layer (checkpoint_every and checkpoint_offload do not apply)
                "activation_checkpointing": train.gradient_checkpointing,
            }}


def save_whole_adapter(trainer, folder: Path) -> None:
    """Every rank takes part: the adapter gathered whole, written by rank 0 into ``folder`` (the guide's final save)."""
    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(folder))
