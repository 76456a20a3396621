"""Connects a run config and the GPU probe to the estimator: will this run fit this card, and what to change."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine import calibration, estimator, gpu
from engine.config import RunConfig
from engine.models import catalog
from engine.models.errors import ModelSourceError
from engine.models.local import spec_from_config

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


def settings_for(config: RunConfig, *, gpus: int = 1, device: str = "cuda") -> estimator.Settings:
    dtype = config.compute_dtype
    compute_bytes = 4 if dtype == "float32" or (dtype == "auto" and device == "cpu") else 2
    optimizer = config.train.optimizer
    if optimizer == "auto":
        optimizer = "paged_adamw_8bit" if device == "cuda" else "adamw_torch"
    return estimator.Settings(
        quantization=config.quantization, double_quant=config.double_quant, compute_bytes=compute_bytes,
        lora_rank=config.lora.rank, lora_dropout=config.lora.dropout,
        target_modules=tuple(config.lora.target_modules) or estimator.TARGETS_ALL,
        micro_batch=config.train.micro_batch, seq_len=config.data.cutoff,
        gradient_checkpointing=config.train.gradient_checkpointing, optimizer=optimizer, gpus=gpus, device=device,
        loss_chunk_tokens=config.train.loss_chunk_tokens, checkpoint_every=config.train.checkpoint_every,
        checkpoint_offload=config.train.checkpoint_offload and device == "cuda",
        fp32_frozen=config.train.fp32_frozen_layers, packing=config.data.packing,
        padding_free=config.train.padding_free,
    )


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

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate.to_dict(),
            "gpu": self.gpu_name,
            "verdict": None if self.verdict is None else {"status": self.verdict.status,
                                                          "need_bytes": self.verdict.need_bytes,
                                                          "free_bytes": self.verdict.free_bytes,
                                                          "margin_bytes": self.verdict.margin_bytes},
            "suggestions": [{"change": s.change, "need_bytes": s.need_bytes,
                             "settings": {"micro_batch": s.settings.micro_batch, "seq_len": s.settings.seq_len,
                                          "gradient_checkpointing": s.settings.gradient_checkpointing,
                                          "optimizer": s.settings.optimizer, "lora_rank": s.settings.lora_rank,
                                          "loss_chunk_tokens": s.settings.loss_chunk_tokens,
                                          "checkpoint_every": s.settings.checkpoint_every,
                                          "checkpoint_offload": s.settings.checkpoint_offload,
                                          "fp32_frozen": s.settings.fp32_frozen}}
                            for s in self.suggestions],
            "largest_micro_batch": self.largest_micro_batch,
            "longest_sequence": self.longest_sequence,
            "reason": self.reason,
            "measured": self.measured,
        }

    def text(self) -> str:
        lines = [self.estimate.table(), ""]
        if self.verdict is None:
            lines.append(self.reason)
        else:
            v = self.verdict
            lines.append(f"{self.gpu_name}: {v.free_bytes / estimator.GIB:.2f} GiB free → {v.status.upper()} "
                         f"(margin {v.margin_bytes / estimator.GIB:+.2f} GiB)")
            lines.append(f"Largest micro-batch that fits: {self.largest_micro_batch}; longest sequence at this "
                         f"micro-batch: {self.longest_sequence} tokens")
            for s in self.suggestions:
                lines.append(f"  to fit: {s.change} → {s.need_bytes / estimator.GIB:.2f} GiB")
        for entry in self.measured:
            lines.append("Similar run here: " + calibration.describe(entry))
        return "\n".join(lines)


def check(config: RunConfig, *, free_bytes: int | None = None, gpu_name: str | None = None,
          probe: gpu.Probe | None = None) -> FitReport:
    """The estimate for ``config`` against the first GPU's free memory (or ``free_bytes`` when given)."""
    spec = spec_for(config.model)
    settings = settings_for(config)
    result = estimator.estimate(spec, settings)
    measured = calibration.similar(config.model, settings)
    if free_bytes is None:
        probe = probe or gpu.probe()
        if not probe.available:
            return FitReport(result, None, None, reason=probe.reason[:1].upper() + probe.reason[1:]
                             + ": the estimate is for a CUDA GPU.", measured=measured)
        card = probe.gpus[0]
        free_bytes, gpu_name = card.free_bytes, card.name
    report = FitReport(result, gpu_name or "GPU", estimator.verdict(result.total, free_bytes), measured=measured)
    report.largest_micro_batch = estimator.largest_micro_batch(spec, settings, free_bytes)
    report.longest_sequence = estimator.longest_sequence(spec, settings, free_bytes)
    if report.verdict.status != "fits":
        report.suggestions = estimator.suggestions(spec, settings, free_bytes)
    return report


def apply(config: RunConfig, suggestion: estimator.Suggestion) -> RunConfig:
    """The run config with a suggestion applied; gradient accumulation grows to keep the effective batch."""
    from dataclasses import replace

    s = suggestion.settings
    accumulation = max(1, config.train.grad_accum * config.train.micro_batch // s.micro_batch)
    optimizer = config.train.optimizer if s.optimizer == settings_for(config).optimizer else s.optimizer
    train = replace(config.train, micro_batch=s.micro_batch, grad_accum=accumulation,
                    gradient_checkpointing=s.gradient_checkpointing, optimizer=optimizer,
                    loss_chunk_tokens=s.loss_chunk_tokens, checkpoint_every=s.checkpoint_every,
                    # settings_for leaves offload out on the CPU; the user's own choice stays
                    checkpoint_offload=s.checkpoint_offload or config.train.checkpoint_offload,
                    fp32_frozen_layers=s.fp32_frozen)
    return replace(config, train=train, data=replace(config.data, cutoff=s.seq_len),
                   lora=replace(config.lora, rank=s.lora_rank))


def resume_safe_fix(config: RunConfig, *, budget_bytes: int | None = None,
                    measured_peak: int | None = None) -> tuple[str, dict] | None:
    """After an out-of-memory: (what changes, config overrides) that lower the peak and still resume from the last
    checkpoint. The LoRA rank and optimizer stay, because the checkpoint's weights and optimizer state depend on them.

    With a GPU budget and a measured peak, the estimator is corrected by how far it was off and the auto-fit
    suggestion is used; otherwise the micro-batch is halved, then gradient checkpointing turned on, then the cutoff
    halved."""
    settings = settings_for(config)
    if budget_bytes and measured_peak:
        try:
            spec = spec_for(config.model)
            need = estimator.estimate(spec, settings).total
            corrected = int(budget_bytes * min(1.0, need / measured_peak))
            for suggestion in estimator.suggestions(spec, settings, corrected):
                s = suggestion.settings
                if s.lora_rank == settings.lora_rank and s.optimizer == settings.optimizer:
                    return suggestion.change, _overrides(config, apply(config, suggestion))
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


def _overrides(before: RunConfig, after: RunConfig) -> dict:
    """Dotted paths of the fields that differ."""
    found = {}
    old, new = before.to_dict(), after.to_dict()
    for key, value in new.items():
        if isinstance(value, dict):
            found.update({f"{key}.{k}": v for k, v in value.items() if old.get(key, {}).get(k) != v})
        elif old.get(key) != value:
            found[key] = value
    return found
