"""Connects a run config and the GPU probe to the estimator: will this run fit this card, and what to change."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.light import calibration, catalog, estimator, gpu, ranks, schema
from engine.light.config import BY_PATH, RunConfig
from engine.light.errors import ModelSourceError
from engine.light.model_folder import spec_from_config

DEMO_SPEC = "smollm2-135m"


def spec_for(reference: str) -> catalog.ModelSpec:
    """Architecture facts for a model reference, without loading the model."""
    if reference == "demo":
        return catalog.find(DEMO_SPEC)
    found = catalog.find(reference)
    if found is not None:
        return found
    config_file = Path(reference).expanduser() / "config.json"
    if config_file.is_file():
        try:
            return spec_from_config(json.loads(config_file.read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelSourceError(f"config.json lacks an architecture fact ({exc})", where=str(config_file),
                                   kind="bad_config") from None
    raise ModelSourceError("no architecture facts for this model", where=reference,
                           hint="pick a catalog model or a local folder with config.json (fetch hub models first)",
                           kind="unknown")


@dataclass
class FitReport:
    estimate: estimator.Estimate
    gpu_name: str | None
    verdict: estimator.Verdict | None  # None without a GPU
    suggestions: list[estimator.Suggestion] = field(default_factory=list)
    largest_micro_batch: int | None = None
    longest_sequence: int | None = None
    reason: str = ""  # why there is no verdict
    measured: list[dict] = field(default_factory=list)  # similar past runs on this machine (calibration)
    data_sequence: int | None = None  # the sequence the estimate is for, from the dataset's longest row
    worst_case_bytes: int | None = None  # the need at the full cutoff, when the estimate is for the data
    strategy: str | None = None  # with several GPUs: ddp or fsdp, as the run would use them
    per_gpu: list[dict] = field(default_factory=list)  # with several GPUs: each one's name, bus id, free, status

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate.to_dict(),
            "gpu": self.gpu_name,
            "verdict": None if self.verdict is None else {"status": self.verdict.status,
                                                          "need_bytes": self.verdict.need_bytes,
                                                          "free_bytes": self.verdict.free_bytes,
                                                          "margin_bytes": self.verdict.margin_bytes},
            "suggestions": [{"change": s.change, "need_bytes": s.need_bytes, "overrides": s.overrides}
                            for s in self.suggestions],
            "largest_micro_batch": self.largest_micro_batch,
            "longest_sequence": self.longest_sequence,
            "reason": self.reason,
            "measured": self.measured,
            "strategy": self.strategy,
            "per_gpu": self.per_gpu,
        }

    def text(self) -> str:
        lines = [self.estimate.table(), ""]
        if self.verdict is None:
            lines.append(self.reason)
        else:
            v = self.verdict
            if self.strategy:
                how = ("each GPU holds the whole model (DDP)" if self.strategy == "ddp" else
                       "the weights are sharded across the GPUs (FSDP)")
                lines.append(f"{len(self.per_gpu)} GPUs: {how}; the estimate is for each GPU")
                for card in self.per_gpu:
                    lines.append(f"  {card['name']} ({card['bus_id']}): {card['free_bytes'] / estimator.GIB:.2f} GiB "
                                 f"free → {card['status'].upper()}")
            lines.append(f"{self.gpu_name}: {v.free_bytes / estimator.GIB:.2f} GiB free → {v.status.upper()} "
                         f"(margin {v.margin_bytes / estimator.GIB:+.2f} GiB)")
            lines.append(f"Largest micro-batch that fits: {self.largest_micro_batch}; longest sequence at this "
                         f"micro-batch: {self.longest_sequence} tokens")
            for s in self.suggestions:
                lines.append(f"  to fit: {s.change} → {s.need_bytes / estimator.GIB:.2f} GiB")
        for entry in self.measured:
            lines.append("Similar run here: " + calibration.describe(entry))
        return "\n".join(lines)


def for_data(config: RunConfig, longest_row: int | None) -> RunConfig:
    """The config as its dataset will load the GPU. With padding-free batches (and no packing) a micro-batch is as
    long as its examples, so the dataset's longest row, not the cutoff, bounds the activations."""
    if longest_row is None or not config.train.padding_free or config.data.packing:
        return config
    return config.with_values({"data.cutoff": max(1, min(longest_row, config.data.cutoff))})


def check(config: RunConfig, *, free_bytes: int | None = None, gpu_name: str | None = None,
          probe: gpu.Probe | None = None, longest_row: int | None = None) -> FitReport:
    """The estimate for ``config`` against the free memory of the GPU it would train on (each selected GPU, with
    several: the estimate is per GPU, judged against the one with the least free memory), or against ``free_bytes``
    when given; with the dataset's ``longest_row`` (tokens, before the cutoff), for the sequences the data really has,
    the cutoff's need kept as the worst case. With several GPUs and ``distributed.strategy: auto``, FSDP is chosen when
    the model fits the selected GPUs only sharded."""
    spec = spec_for(config.model)
    full = config
    config = for_data(config, longest_row)
    measured = calibration.similar(config)
    cards: list[gpu.GpuInfo] = []
    reason = ""
    if free_bytes is None:
        probe = probe or gpu.probe()
        if not probe.available:
            reason = probe.reason[:1].upper() + probe.reason[1:] + " — the estimate is for a CUDA GPU."
        else:
            try:
                cards = ranks.selected_gpus(config, probe) if len(config.distributed.gpus) > 1 else []
            except ranks.GpuSelectionError as exc:
                reason = f"{exc} — the estimate is for one GPU."
            if not cards and not reason:
                one = ranks.selected_gpus(config, probe) if config.distributed.gpus else [gpu.training_gpu(probe)]
                cards = [card for card in one if card is not None]  # CUDA's device 0, which need not be NVML's first
                if not cards:
                    reason = ("CUDA_VISIBLE_DEVICES leaves no GPU visible to the engine — the estimate is for a "
                              "CUDA GPU.")
    if cards:
        tightest = min(cards, key=lambda card: card.free_bytes)
        free_bytes, gpu_name = tightest.free_bytes, tightest.name
    strategy = strategy_for(spec, config, free_bytes) if len(config.distributed.gpus) > 1 else None
    target = estimator.target_for(config, strategy)
    result = estimator.estimate(spec, config, target)
    worst = estimator.estimate(spec, full, target).total if config is not full else None
    if free_bytes is None:
        return FitReport(result, None, None, reason=reason, measured=measured,
                         data_sequence=config.data.cutoff if worst else None, worst_case_bytes=worst,
                         strategy=strategy)
    report = FitReport(result, gpu_name or "GPU", estimator.verdict(result.total, free_bytes), measured=measured,
                       data_sequence=config.data.cutoff if worst else None, worst_case_bytes=worst, strategy=strategy)
    if len(cards) > 1:
        report.per_gpu = [{"name": card.name, "bus_id": card.pci_bus_id or str(card.index),
                           "free_bytes": card.free_bytes,
                           "status": estimator.verdict(result.total, card.free_bytes).status} for card in cards]
    report.largest_micro_batch = estimator.largest_micro_batch(spec, config, free_bytes, target)
    report.longest_sequence = estimator.longest_sequence(spec, config, free_bytes, target)
    if report.verdict.status != "fits":
        report.suggestions = _sharding(spec, config, free_bytes, strategy) + estimator.suggestions(
            spec, config, free_bytes, target)
    return report


def strategy_for(spec: catalog.ModelSpec, config: RunConfig, free_bytes: int | None) -> str:
    """ddp or fsdp for several GPUs: the config's choice, or for ``auto`` DDP when the whole model fits each GPU
    (no sharding traffic) and FSDP when it fits only sharded."""
    chosen = config.distributed.strategy
    if chosen != "auto":
        return chosen
    if free_bytes is None or _fits(spec, config, free_bytes, "ddp") or not _fits(spec, config, free_bytes, "fsdp"):
        return "ddp"
    return "fsdp"


def _fits(spec, config: RunConfig, free_bytes: int, strategy: str) -> bool:
    need = estimator.estimate(spec, config, estimator.target_for(config, strategy)).total
    return need <= estimator.FIT_SHARE * free_bytes


def _sharding(spec, config: RunConfig, free_bytes: int, strategy: str | None) -> list[estimator.Suggestion]:
    """Sharding the weights, when DDP was asked for and the selected GPUs hold the run only sharded."""
    if strategy != "ddp" or not _fits(spec, config, free_bytes, "fsdp"):
        return []
    need = estimator.estimate(spec, config, estimator.target_for(config, "fsdp")).total
    return [estimator.Suggestion(f"shard the weights across the {len(config.distributed.gpus)} GPUs (FSDP)",
                                 {"distributed.strategy": "fsdp"}, need)]


def apply(config: RunConfig, suggestion: estimator.Suggestion) -> RunConfig:
    """The run config with a suggestion applied (its overrides keep the effective batch)."""
    return config.with_values(suggestion.overrides)


def resume_safe_fix(config: RunConfig, *, budget_bytes: int | None = None,
                    measured_peak: int | None = None) -> tuple[str, dict] | None:
    """After an out-of-memory: (what changes, config overrides) that lower the peak and still resume from the last
    checkpoint, so only settings marked ``resume_safe`` change (not the LoRA rank or the optimizer, on which the
    checkpoint's weights and optimizer state depend).

    With a GPU budget and a measured peak, the estimator is corrected by how far it was off and the auto-fit
    suggestion is used; otherwise the micro-batch is halved, then gradient checkpointing turned on, then the cutoff
    halved."""
    if budget_bytes and measured_peak:
        try:
            spec = spec_for(config.model)
            need = estimator.estimate(spec, config).total
            corrected = int(budget_bytes * min(1.0, need / measured_peak))
            for suggestion in estimator.suggestions(spec, config, corrected):
                overrides = schema.differences(config, apply(config, suggestion))
                if all(BY_PATH[path].resume_safe for path in overrides):
                    return suggestion.change, overrides
        except ModelSourceError:
            pass
    t = config.train
    if t.micro_batch > 1:
        half = t.micro_batch // 2
        return (f"micro-batch {half} with {t.grad_accum * 2}× gradient accumulation",
                {"train.micro_batch": half, "train.grad_accum": t.grad_accum * t.micro_batch // half})
    if not t.gradient_checkpointing:
        return "turn on gradient checkpointing", {"train.gradient_checkpointing": True}
    if config.data.cutoff > 256:
        return f"shorten the cutoff to {config.data.cutoff // 2} tokens", {"data.cutoff": config.data.cutoff // 2}
    return None


@dataclass
class Plan:
    """How a model would be trained out of the box: the default settings, or the fit advice's first change when
    they do not fit the GPU; its estimate and verdict."""

    config: RunConfig
    need_bytes: int
    status: str | None  # fits, tight, won't fit; None without a GPU reading
    change: str = ""  # the fit advice's change to the defaults, in words; empty: the defaults as they are


def default_plan(spec: catalog.ModelSpec, free_bytes: int | None) -> Plan:
    """The default settings for ``spec`` on one GPU with ``free_bytes`` free (None: no GPU known, the estimate is for
    a CUDA GPU), changed as the fit advice proposes where they would not fit."""
    config = RunConfig(model=spec.key)
    need = estimator.estimate(spec, config).total
    if free_bytes is None:
        return Plan(config, need, None)
    status = estimator.verdict(need, free_bytes).status
    if status == "fits":
        return Plan(config, need, status)
    for suggestion in estimator.suggestions(spec, config, free_bytes):
        return Plan(apply(config, suggestion), suggestion.need_bytes,
                    estimator.verdict(suggestion.need_bytes, free_bytes).status, suggestion.change)
    return Plan(config, need, status)


def describe_defaults() -> str:
    """The default settings the catalog's estimates are made with, in words."""
    c = RunConfig()
    return (f"the default QLoRA settings: 4-bit base weights, micro-batch {c.train.micro_batch} × "
            f"{c.data.cutoff:,} tokens, gradient checkpointing "
            f"{'on' if c.train.gradient_checkpointing else 'off'}, LoRA rank {c.lora.rank}, 16-bit compute")
