"""The run configuration: the one definition of every run setting, saved as ``config.yaml`` in every run folder.

Each field is declared once with ``setting()`` (type, default, documentation, label, bounds or choices, where the
form shows it, whether the memory estimate depends on it). The estimator, the fit advice, the calibration records, the
presets, the demo, the GUI's form and every CLI command (``--set section.field=value``) use these fields by their
dotted names. ``load``/``from_mapping`` report every problem at once with its dotted path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.light import schema
from engine.light.dataset_formats import FORMATS
from engine.light.schema import BASIC, RUN, setting

QUANTIZATIONS = ("nf4", "none")
DTYPES = ("auto", "bfloat16", "float16", "float32")
OPTIMIZERS = ("auto", "paged_adamw_8bit", "adamw_8bit", "adamw_torch")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")
DEVICES = ("auto", "cuda", "cpu")
TRAIN_ON = ("assistant", "all")
STRATEGIES = ("auto", "ddp", "fsdp")  # how several GPUs share a run (distributed.strategy)
TRACKERS = ("tensorboard", "mlflow", "wandb")  # experiment trackers the Trainer reports to (train.report_to)
DEFAULT_LOSS_CHUNK = 1024  # tokens per chunk of the chunked loss: the default, and what the fit advice proposes


class ConfigError(Exception):
    """Every problem of a config, each as "field.path: what is wrong"."""

    def __init__(self, problems: list[str], where: str = ""):
        self.problems, self.where = problems, where
        head = f"{where}: " if where else ""
        super().__init__(head + f"{len(problems)} problem(s) in the run config:\n  " + "\n  ".join(problems))


@dataclass
class DataSettings:
    """How a dataset becomes training examples."""

    format: str | None = setting(None, "Dataset format: alpaca, sharegpt, openai, prompt_completion or text. "
                                       "Leave empty to detect it from the columns.", choices=FORMATS,
                          label="Dataset format")
    columns: dict[str, str] = setting(dict, "Column mapping for unusual names, e.g. {instruction: question, "
                                            "output: answer}.", label="Column mapping")
    cutoff: int = setting(1024, "Longest training sequence in tokens. Longer rows are cut at the end "
                                "(raw text is split into blocks).", low=16, high=1_048_576, unit="tokens",
                          label="Longest sequence (cutoff)", group=BASIC, memory=True)
    train_on: str = setting("assistant", "Which tokens the model learns from: 'assistant' (the replies only, "
                                         "recommended) or 'all'.", choices=TRAIN_ON, label="Train on")
    packing: bool = setting(False, "Pack several short examples into each sequence of `cutoff` tokens: "
                                   "less padding, faster epochs.", memory=True)
    validation_share: float = setting(0.05, "Share of examples held out to measure the validation loss (0 to 0.5).",
                                      low=0.0, high=0.5)
    seed: int = setting(42, "Seed of the train/validation split, so it can be repeated exactly.", low=0,
                        label="Split seed")
    drop_duplicates: bool = setting(True, "Leave out rows that repeat an earlier row exactly (they are still "
                                          "reported).")


@dataclass
class LoraSettings:
    rank: int = setting(16, "LoRA rank r: the size of the trained update matrices. 8-64 is typical; higher learns "
                            "more and uses more memory.", low=1, high=4096, label="Adapter size (LoRA rank)",
                        group=BASIC, memory=True, resume_safe=False)
    alpha: int = setting(32, "LoRA alpha: the update is scaled by alpha / rank. Twice the rank is a common choice.",
                         low=1, high=8192, label="Adapter strength (LoRA alpha)",
                         group=BASIC)
    dropout: float = setting(0.05, "Dropout on the LoRA inputs during training (0 to 0.5).", low=0.0, high=0.5,
                             label="Adapter dropout", memory=True)
    target_modules: list[str] = setting(list, "Layers that get adapters, e.g. [q_proj, v_proj]. Empty means every "
                                              "linear layer except the output head (recommended).",
                                        label="Layers with adapters", memory=True, resume_safe=False)


@dataclass
class TrainSettings:
    learning_rate: float = setting(2e-4, "Peak learning rate of the adapters.", above=0.0, below=1.0,
                                   advice="use e.g. 1e-4 to 1e-3", label="Learning rate", group=BASIC)
    scheduler: str = setting("cosine", "How the learning rate changes over the run: cosine, linear or "
                                       "constant_with_warmup.", choices=SCHEDULERS,
                            label="Learning rate schedule")
    warmup_ratio: float = setting(0.03, "Share of the steps spent ramping the learning rate up from zero.",
                                  low=0.0, below=1.0, advice="use 0 to 0.5", label="Warm-up share")
    epochs: float = setting(1.0, "Passes over the training data (ignored when max_steps is set).", low=0.0,
                            high=1000.0, group=BASIC)
    max_steps: int = setting(0, "Stop after this many optimizer steps; 0 means train for `epochs`.", low=0,
                             label="Max steps", group=BASIC, unit="steps", zero="by epochs")
    micro_batch: int = setting(4, "Sequences per forward pass. Lower it if memory runs out.", low=1, high=4096,
                               label="Sequences at once (micro-batch)", group=BASIC, memory=True, unit="sequences")
    grad_accum: int = setting(2, "Micro-batches per optimizer step; effective batch = micro_batch × grad_accum × "
                                 "GPUs (distributed.gpus).", low=1, high=65536,
                          label="Micro-batches per update (gradient accumulation)", group=BASIC)
    gradient_checkpointing: bool = setting(True, "Recompute activations in the backward pass: much less memory, "
                                                 "about 30% slower.",
                                           label="Recompute to save memory (gradient checkpointing)",
                                           memory=True)
    padding_free: bool = setting(True, "Lay each micro-batch's examples side by side in one sequence instead of "
                                       "padding them to the longest: the same examples and the same loss per step, "
                                       "with no compute or memory spent on padding.", label="Padding-free batches",
                                 memory=True)
    checkpoint_every: int = setting(1, "With gradient checkpointing: recompute only every Nth decoder layer; the "
                                       "others keep their activations (faster, more memory). 1 checkpoints every "
                                       "layer.", low=1, high=1024, label="Checkpoint every Nth layer", memory=True)
    checkpoint_offload: bool = setting(False, "With gradient checkpointing on a CUDA GPU: keep each checkpointed "
                                              "layer's input in pinned CPU memory instead of on the GPU, which frees "
                                              "most of what long sequences need, for one copy each way per step.",
                                       label="Offload checkpoints to CPU memory", memory=True)
    fp32_frozen_layers: bool = setting(False, "With 4-bit weights: upcast the frozen embeddings, output head and "
                                              "norms to fp32, as PEFT's usual QLoRA preparation does. Off keeps them "
                                              "in the compute dtype: 2 bytes less per parameter (about 2 GiB on "
                                              "Llama 3 8B) and 16-bit activations between layers.",
                                       label="Full-precision frozen layers (fp32)", memory=True)
    optimizer: str = setting("auto", "auto (paged 8-bit AdamW on CUDA, AdamW on CPU), paged_adamw_8bit, adamw_8bit "
                                     "or adamw_torch.", choices=OPTIMIZERS, memory=True, resume_safe=False)
    weight_decay: float = setting(0.0, "Weight decay of the adapter weights.", low=0.0, high=1.0)
    max_grad_norm: float = setting(1.0, "Gradients are clipped to this norm to keep training stable.", low=0.0,
                                   high=1000.0, label="Largest gradient size (clipping norm)")
    seed: int = setting(42, "Seed of initialisation, dropout and data order.", low=0)
    logging_steps: int = setting(1, "Report loss, learning rate and speed every N steps.", low=1, high=100_000,
                                 label="Log every N steps")
    eval_steps: int = setting(0, "Evaluate on the validation split every N steps; 0 means at the end of each "
                                 "epoch.", low=0, label="Evaluate every N steps", zero="each epoch")
    compare_base: bool = setting(True, "After training, measure the base model and the fine-tune on the validation "
                                       "split (loss, perplexity and greedy answers to the first prompts, scored with "
                                       "ROUGE-L) and save them in the run folder.", label="Compare with the base model")
    compare_prompts: int = setting(8, "How many validation prompts both models answer for the comparison.", low=0,
                                   high=1000, label="Prompts to compare")
    report_to: list[str] = setting(list, "Experiment trackers that also record the run, through transformers' own "
                                         "integrations: tensorboard (event files in the run folder), mlflow (a local "
                                         "store in LlamaDesk's folder), wandb (offline files in the run folder). "
                                         "tensorboard and mlflow need pip install 'llamadesk[tracking]'; wandb needs "
                                         "pip install wandb.", choices=TRACKERS, label="Track with",
                                   group=RUN)
    save_steps: int = setting(50, "Save a checkpoint every N steps (also on stop).", low=1,
                              label="Checkpoint every N steps")
    keep_checkpoints: int = setting(3, "How many recent checkpoints to keep (older ones are deleted).", low=1,
                                    high=1000)
    loss_chunk_tokens: int = setting(DEFAULT_LOSS_CHUNK,
                                     "Compute the loss this many trained tokens at a time, never holding the scores "
                                     "of the whole vocabulary for every position (the same loss, far less memory "
                                     "with Llama 3's 128k vocabulary); 0 uses the model's standard loss.", low=0,
                                     label="Loss chunk (tokens)", memory=True)


@dataclass
class DistributedSettings:
    """Training on several GPUs (or CPU processes): one process per rank, launched by PyTorch's torchrun machinery."""

    gpus: list[str] = setting(list, "The GPUs that train, by PCI bus id (as 'llamadesk-engine gpus' lists them) or "
                                    "CUDA index. Empty: one GPU, CUDA's first (CUDA_VISIBLE_DEVICES is honoured). "
                                    "Two or more: one training process per GPU; the effective batch is micro_batch "
                                    "× grad_accum × GPUs.", label="GPUs", group=RUN, memory=True)
    strategy: str = setting("auto", "How several GPUs share a run: ddp (each GPU holds the whole 4-bit model and "
                                    "its own micro-batches; fastest), fsdp (the weights are sharded across the GPUs, "
                                    "for a model too large for one GPU; CUDA only), or auto (ddp when the model fits "
                                    "one GPU, fsdp when it fits only the selected GPUs together).",
                            choices=STRATEGIES, label="How GPUs share the run (strategy)", memory=True,
                            resume_safe=False)
    cpu_processes: int = setting(1, "With device cpu: how many training processes share the run (gloo backend), "
                                    "for machines without a GPU and for testing the multi-process path.", low=1,
                                 high=256, label="CPU processes")


@dataclass
class RunConfig:
    model: str = setting("demo", "The base model: 'demo' (offline), a catalog key such as llama-3.2-1b, a Hugging "
                                 "Face id, or a local folder.", group=RUN, memory=True, resume_safe=False)
    dataset: str = setting("", "The dataset file or folder (json, jsonl, csv, tsv, parquet, txt, save_to_disk) or "
                               "a hub dataset id.", group=RUN, resume_safe=False)
    data: DataSettings = field(default_factory=DataSettings)
    quantization: str = setting("nf4", "Base model weights: 'nf4' (4-bit QLoRA, least memory) or 'none' (plain "
                                       "LoRA on 16/32-bit weights).", choices=QUANTIZATIONS, label="Base model weights",
                                group=BASIC,
                                memory=True, resume_safe=False)
    double_quant: bool = setting(True, "Quantize the 4-bit quantization constants too (saves ~0.4 bits/parameter).",
                                 label="Compress the 4-bit scales too (double quantization)",
                                 memory=True)
    compute_dtype: str = setting("auto", "Precision of the computation: auto (bfloat16 where the GPU supports it, "
                                         "float16 on older cards, float32 on the CPU), bfloat16, float16 or "
                                         "float32.", choices=DTYPES, label="Compute precision", memory=True)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    device: str = setting("auto", "Where to train: auto (CUDA if available, else the CPU), cuda or cpu.",
                          choices=DEVICES)
    distributed: DistributedSettings = field(default_factory=DistributedSettings)
    run_name: str = setting("", "Name of the run folder under the runs folder; empty means a dated name.",
                            group=RUN, label="Run name")

    def problems(self, *, require_dataset: bool = True) -> list[str]:
        found = [] if self.dataset or not require_dataset else ["dataset: no dataset chosen"]
        found += schema.bound_problems(self)
        if self.train.max_steps == 0 and self.train.epochs <= 0:
            found.append("train.epochs: must be above 0 when train.max_steps is 0")
        if self.quantization == "nf4" and self.compute_dtype == "float16" and self.device == "cpu":
            found.append("compute_dtype: float16 is not supported for training on the CPU; use auto or float32")
        if self.device == "cpu" and self.compute_dtype == "bfloat16":
            found.append("compute_dtype: bfloat16 training on the CPU is slow and inexact here; use auto or float32")
        if self.device == "cpu" and self.train.optimizer == "paged_adamw_8bit":
            found.append("train.optimizer: paged optimizers need a CUDA GPU; use auto or adamw_torch on the CPU")
        if len(set(self.distributed.gpus)) != len(self.distributed.gpus):
            found.append("distributed.gpus: a GPU is listed twice")
        if self.run_name and (Path(self.run_name).name != self.run_name or self.run_name.startswith(".")):
            found.append(f"run_name: '{self.run_name}' must be a plain folder name (no slashes, no leading dot)")
        return found

    def to_dict(self) -> dict:
        return schema.to_dict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def with_values(self, overrides: dict[str, Any]) -> RunConfig:
        """A copy with dotted-path overrides, unvalidated (``from_mapping`` validates user input)."""
        return schema.with_values(self, overrides)


SETTINGS = schema.settings_of(RunConfig)  # every leaf setting, by dotted path, in declaration order
BY_PATH = {s.path: s for s in SETTINGS}


def from_mapping(data: dict, where: str = "", *, require_dataset: bool = True) -> RunConfig:
    """A validated config from plain data; ``require_dataset=False`` for what needs no data (the estimate)."""
    problems: list[str] = []
    config = schema.from_dict(RunConfig, data, problems)
    problems += config.problems(require_dataset=require_dataset)
    if problems:
        raise ConfigError(problems, where)
    return config


def load(path: str | Path | None, overrides: list[str] | dict[str, Any] = (), *,
         require_dataset: bool = True) -> RunConfig:
    """A config file (or the defaults, for None) with ``--set`` style overrides ("field.path=value" items, or a
    dict), validated."""
    data = read_yaml(path) if path else {}
    if isinstance(data, dict):
        data = apply_overrides(data, overrides)
    return from_mapping(data, str(path or ""), require_dataset=require_dataset)


def read_yaml(path: str | Path) -> Any:
    """A config file's plain data; unreadable or invalid YAML is a ConfigError naming the file."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(["the config file does not exist"], str(path)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read the config: {exc.strerror}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None


def apply_overrides(data: dict, overrides: list[str] | dict[str, Any]) -> dict:
    """Plain config data with overrides applied: "field.path=value" items (the value read as YAML) or a dict."""
    items = overrides.items() if isinstance(overrides, dict) else (_split_override(item) for item in overrides)
    for path, value in items:
        schema.set_path(data, path, value)
    return data


def _split_override(item: str) -> tuple[str, Any]:
    path, sep, value = item.partition("=")
    if not sep or not path:
        raise ConfigError([f"--set {item}: expected FIELD=VALUE, e.g. train.micro_batch=2"])
    return path.strip(), yaml.safe_load(value)


def save(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(config.to_yaml(), encoding="utf-8")


def docs() -> dict[str, str]:
    """Dotted field path -> one-sentence documentation, for tooltips and reference tables."""
    return {s.path: s.doc for s in SETTINGS}


def memory_fields() -> list[str]:
    """The settings the GPU memory estimate depends on."""
    return [s.path for s in SETTINGS if s.memory]
