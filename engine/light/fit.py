"""Connects a run config and the GPU probe to the estimator: will this run fit this card, and what to change."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.light import calibration, catalog, estimator, gpu, schema
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


def for_data(config: RunConfig, longest_row: int | None) -> RunConfig:
    """The config as its dataset will load the GPU. With padding-free batches (and no packing) a micro-batch is as
    long as its examples, so the dataset's longest row, not the cutoff, bounds the activations."""
    if longest_row is None or not config.train.padding_free or config.data.packing:
        return config
    return config.with_values({"data.cutoff": max(1, min(longest_row, config.data.cutoff))})


def check(config: RunConfig, *, free_bytes: int | None = None, gpu_name: str | None = None,
          probe: gpu.Probe | None = None, longest_row: int | None = None) -> FitReport:
    """The estimate for ``config`` against the first GPU's free memory (or ``free_bytes`` when given); with the
    dataset's ``longest_row`` (tokens, before the cutoff), for the sequences the data really has, the cutoff's
    need kept as the worst case."""
    spec = spec_for(config.model)
    full = config
    config = for_data(config, longest_row)
    worst = estimator.estimate(spec, full).total if config is not full else None
    result = estimator.estimate(spec, config)
    measured = calibration.similar(config)
    if free_bytes is None:
        probe = probe or gpu.probe()
        if not probe.available:
            return FitReport(result, None, None, reason=probe.reason[:1].upper() + probe.reason[1:]
                             + ": the estimate is for a CUDA GPU.", measured=measured,
                             data_sequence=config.data.cutoff if worst else None, worst_case_bytes=worst)
        card = gpu.training_gpu(probe)  # CUDA's device 0, which need not be NVML's first GPU
        if card is None:
            return FitReport(result, None, None, reason="CUDA_VISIBLE_DEVICES leaves no GPU visible to the engine: "
                             "the estimate is for a CUDA GPU.", measured=measured,
                             data_sequence=config.data.cutoff if worst else None, worst_case_bytes=worst)
        free_bytes, gpu_name = card.free_bytes, card.name
    report = FitReport(result, gpu_name or "GPU", estimator.verdict(result.total, free_bytes), measured=measured,
                       data_sequence=config.data.cutoff if worst else None, worst_case_bytes=worst)
    report.largest_micro_batch = estimator.largest_micro_batch(spec, config, free_bytes)
    report.longest_sequence = estimator.longest_sequence(spec, config, free_bytes)
    if report.verdict.status != "fits":
        report.suggestions = estimator.suggestions(spec, config, free_bytes)
    return report


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
