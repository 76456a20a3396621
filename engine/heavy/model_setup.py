"""A loaded base model made ready for LoRA training: frozen, optionally upcast, with activation checkpointing.

This replaces PEFT's ``prepare_model_for_kbit_training``, which always upcasts every 16-bit parameter left after
4-bit quantization (embeddings, output head, norms) to fp32. That costs 2 bytes per such parameter (about 2 GiB on
Llama 3 8B, whose embeddings and head hold 1.05 B parameters) and turns the residual stream between layers into fp32,
doubling what checkpointing keeps. Here the upcast is a choice (``train.fp32_frozen_layers``), off by default.
Checkpointing goes through transformers' ``activation_checkpointing_enable``, which also checkpoints every Nth layer
only, or holds the checkpointed inputs in pinned CPU memory; under FSDP, FSDP checkpoints instead (sharding.py).
"""

from __future__ import annotations

import torch
from peft import LoraConfig
from transformers import BitsAndBytesConfig

from engine.heavy import distributed, sharding


def quantization_config(config, compute_dtype):
    """The one place a run config becomes a ``BitsAndBytesConfig`` (None for plain LoRA)."""
    if config.quantization == "none":
        return None

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        # FSDP shards float tensors only: the 4-bit weights are then stored in the compute dtype's width
        bnb_4bit_quant_storage=compute_dtype if distributed.sharded() else torch.uint8,
    )


def peft_config(config):
    """The one place a run config becomes a PEFT ``LoraConfig``."""

    return LoraConfig(
        r=config.lora.rank,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules or "all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )


def keep_cpu_weights_trainable(model) -> None:
    """bitsandbytes (0.50) repacks a 4-bit layer's weights for a faster CPU kernel the first time the layer runs
    without gradients on a CPU with AVX512-BF16, and keeps them so; the backward pass through a repacked layer then
    gives wrong gradients (on the demo: the input's gradient 527 → 2.9). Training evaluates without gradients, so after
    the first evaluation the run trained wrong (the demo's loss rose from 1.1 to 2.0 and its replies became garbage).
    Training models keep the trainable layout; chat, which never trains, keeps the fast one."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def for_training(model, train, *, quantized: bool, device: str):
    """Freeze ``model`` in place and set up checkpointing from the run's ``train`` settings; returns the model."""

    for param in model.parameters():
        param.requires_grad_(False)
    if quantized and device == "cpu":
        keep_cpu_weights_trainable(model)
    if quantized and train.fp32_frozen_layers:
        for param in model.parameters():
            if param.dtype in (torch.float16, torch.bfloat16):  # 4-bit weights are stored as uint8: left alone
                param.data = param.data.float()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the 16-bit copies are free now
    if sharding.model_checkpoints_activations(train):
        # Pinned host memory needs a GPU; on the CPU the activations are in host memory already.
        options = {"every_n_layers": train.checkpoint_every, "offload": train.checkpoint_offload and device == "cuda"}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.23 and later
            model.activation_checkpointing_enable({"use_reentrant": False}, **options)
        else:  # 5.17 to 5.22: the same options under the older name
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False}, **options)
    return model
