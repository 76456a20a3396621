"""The run configuration: one typed, documented object, saved as ``config.yaml`` in every run folder.

``load``/``validate`` report every problem at once with its dotted field path. ``quantization_config`` and
``peft_config`` are the only places that turn this flat description into bitsandbytes and PEFT objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.data.pipeline import DataSettings
from engine.estimator import DEFAULT_LOSS_CHUNK
from engine.settings import doc, field_docs, from_dict, to_dict

QUANTIZATIONS = ("nf4", "none")
DTYPES = ("auto", "bfloat16", "float16", "float32")
OPTIMIZERS = ("auto", "paged_adamw_8bit", "adamw_8bit", "adamw_torch")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")
DEVICES = ("auto", "cuda", "cpu")


class ConfigError(Exception):
    """Every problem of a config, each as "field.path: what is wrong"."""

    def __init__(self, problems: list[str], where: str = ""):
        self.problems, self.where = problems, where
        head = f"{where}: " if where else ""
        super().__init__(head + f"{len(problems)} problem(s) in the run config:\n  " + "\n  ".join(problems))


@dataclass
class LoraSettings:
    rank: int = doc(16, "LoRA rank r: the size of the trained update matrices. 8-64 is typical; higher learns "
                        "more and uses more memory.")
    alpha: int = doc(32, "LoRA alpha: the update is scaled by alpha / rank. Twice the rank is a common choice.")
    dropout: float = doc(0.05, "Dropout on the LoRA inputs during training (0 to 0.5).")
    target_modules: list[str] = doc(list, "Layers that get adapters, e.g. [q_proj, v_proj]. Empty means every "
                                          "linear layer except the output head (recommended).")


@dataclass
class TrainSettings:
    learning_rate: float = doc(2e-4, "Peak learning rate of the adapters.")
    scheduler: str = doc("cosine", "How the learning rate changes over the run: cosine, linear or "
                                   "constant_with_warmup.")
    warmup_ratio: float = doc(0.03, "Share of the steps spent ramping the learning rate up from zero.")
    epochs: float = doc(1.0, "Passes over the training data (ignored when max_steps is set).")
    max_steps: int = doc(0, "Stop after this many optimizer steps; 0 means train for `epochs`.")
    micro_batch: int = doc(4, "Sequences per forward pass. Lower it if memory runs out.")
    grad_accum: int = doc(2, "Micro-batches per optimizer step; effective batch = micro_batch × grad_accum × GPUs.")
    gradient_checkpointing: bool = doc(True, "Recompute activations in the backward pass: much less memory, "
                                             "about 30% slower.")
    padding_free: bool = doc(True, "Lay each micro-batch's examples side by side in one sequence instead of padding "
                                   "them to the longest: the same examples and the same loss per step, with no "
                                   "compute or memory spent on padding.")
    checkpoint_every: int = doc(1, "With gradient checkpointing: recompute only every Nth decoder layer; the others "
                                   "keep their activations (faster, more memory). 1 checkpoints every layer.")
    checkpoint_offload: bool = doc(False, "With gradient checkpointing on a CUDA GPU: keep each checkpointed layer's "
                                          "input in pinned CPU memory instead of on the GPU, which frees most of "
                                          "what long sequences need, for one copy each way per step.")
    fp32_frozen_layers: bool = doc(False, "With 4-bit weights: upcast the frozen embeddings, output head and norms to "
                                          "fp32, as PEFT's usual QLoRA preparation does. Off keeps them in the "
                                          "compute dtype: 2 bytes less per parameter (about 2 GiB on Llama 3 8B) "
                                          "and 16-bit activations between layers.")
    optimizer: str = doc("auto", "auto (paged 8-bit AdamW on CUDA, AdamW on CPU), paged_adamw_8bit, adamw_8bit "
                                 "or adamw_torch.")
    weight_decay: float = doc(0.0, "Weight decay of the adapter weights.")
    max_grad_norm: float = doc(1.0, "Gradients are clipped to this norm to keep training stable.")
    seed: int = doc(42, "Seed of initialisation, dropout and data order.")
    logging_steps: int = doc(1, "Report loss, learning rate and speed every N steps.")
    eval_steps: int = doc(0, "Evaluate on the validation split every N steps; 0 means at the end of each epoch.")
    save_steps: int = doc(50, "Save a checkpoint every N steps (also on stop).")
    keep_checkpoints: int = doc(3, "How many recent checkpoints to keep (older ones are deleted).")
    loss_chunk_tokens: int = doc(DEFAULT_LOSS_CHUNK,
                                 "Compute the loss this many trained tokens at a time, never holding the scores of the "
                                 "whole vocabulary for every position (the same loss, far less memory with Llama 3's "
                                 "128k vocabulary); 0 uses the model's standard loss.")


@dataclass
class RunConfig:
    model: str = doc("demo", "The base model: 'demo' (offline), a catalog key such as llama-3.2-1b, a Hugging "
                             "Face id, or a local folder.")
    dataset: str = doc("", "The dataset file or folder (json, jsonl, csv, tsv, parquet, txt, save_to_disk) or a "
                           "hub dataset id.")
    data: DataSettings = field(default_factory=DataSettings)
    quantization: str = doc("nf4", "Base model weights: 'nf4' (4-bit QLoRA, least memory) or 'none' (plain "
                                   "LoRA on 16/32-bit weights).")
    double_quant: bool = doc(True, "Quantize the 4-bit quantization constants too (saves ~0.4 bits/parameter).")
    compute_dtype: str = doc("auto", "Precision of the computation: auto (bfloat16 where the GPU supports it, "
                                     "float16 on older cards, float32 on the CPU), bfloat16, float16 or float32.")
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    device: str = doc("auto", "Where to train: auto (CUDA if available, else the CPU), cuda or cpu.")
    run_name: str = doc("", "Name of the run folder under the runs folder; empty means a dated name.")

    def problems(self) -> list[str]:
        found = []
        if not self.dataset:
            found.append("dataset: no dataset chosen")
        found += [f"data.{p}" for p in self.data.problems()]
        for name, allowed in (("quantization", QUANTIZATIONS), ("compute_dtype", DTYPES), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                found.append(f"{name}: '{getattr(self, name)}' is not one of {', '.join(allowed)}")
        if self.train.optimizer not in OPTIMIZERS:
            found.append(f"train.optimizer: '{self.train.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        if self.train.scheduler not in SCHEDULERS:
            found.append(f"train.scheduler: '{self.train.scheduler}' is not one of {', '.join(SCHEDULERS)}")
        for path, value, low in (("lora.rank", self.lora.rank, 1), ("lora.alpha", self.lora.alpha, 1),
                                 ("train.micro_batch", self.train.micro_batch, 1),
                                 ("train.grad_accum", self.train.grad_accum, 1),
                                 ("train.logging_steps", self.train.logging_steps, 1),
                                 ("train.save_steps", self.train.save_steps, 1),
                                 ("train.keep_checkpoints", self.train.keep_checkpoints, 1),
                                 ("train.max_steps", self.train.max_steps, 0),
                                 ("train.eval_steps", self.train.eval_steps, 0),
                                 ("train.loss_chunk_tokens", self.train.loss_chunk_tokens, 0),
                                 ("train.checkpoint_every", self.train.checkpoint_every, 1)):
            if value < low:
                found.append(f"{path}: must be at least {low}, not {value}")
        if not 0 <= self.lora.dropout <= 0.5:
            found.append(f"lora.dropout: {self.lora.dropout} is out of range; use 0 to 0.5")
        if not 0 < self.train.learning_rate < 1:
            found.append(f"train.learning_rate: {self.train.learning_rate} is out of range; use e.g. 1e-4 to 1e-3")
        if not 0 <= self.train.warmup_ratio < 1:
            found.append(f"train.warmup_ratio: {self.train.warmup_ratio} is out of range; use 0 to 0.5")
        if self.train.max_steps == 0 and self.train.epochs <= 0:
            found.append("train.epochs: must be above 0 when train.max_steps is 0")
        # Cross-field rules.
        if self.quantization == "nf4" and self.compute_dtype == "float16" and self.device == "cpu":
            found.append("compute_dtype: float16 is not supported for training on the CPU; use auto or float32")
        if self.device == "cpu" and self.compute_dtype == "bfloat16":
            found.append("compute_dtype: bfloat16 training on the CPU is slow and inexact here; use auto or float32")
        if self.device == "cpu" and self.train.optimizer == "paged_adamw_8bit":
            found.append("train.optimizer: paged optimizers need a CUDA GPU; use auto or adamw_torch on the CPU")
        if self.run_name and (Path(self.run_name).name != self.run_name or self.run_name.startswith(".")):
            found.append(f"run_name: '{self.run_name}' must be a plain folder name (no slashes, no leading dot)")
        return found

    def to_dict(self) -> dict:
        return to_dict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def from_mapping(data: dict, where: str = "") -> RunConfig:
    problems: list[str] = []
    config = from_dict(RunConfig, data, problems)
    problems += config.problems()
    if problems:
        raise ConfigError(problems, where)
    return config


def load(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(["the config file does not exist"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    return from_mapping(data or {}, str(path))


def save(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(config.to_yaml(), encoding="utf-8")


def docs() -> dict[str, str]:
    """Dotted field path -> one-sentence documentation, for tooltips and reference tables."""
    return field_docs(RunConfig)


def quantization_config(config: RunConfig, compute_dtype):
    """The one place a run config becomes a ``BitsAndBytesConfig`` (None for plain LoRA)."""
    if config.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def peft_config(config: RunConfig):
    """The one place a run config becomes a PEFT ``LoraConfig``."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.rank,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules or "all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )
