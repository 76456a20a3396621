"""What went wrong in a training run, in words a user can act on: out of memory (when, measured against the estimate,
and a change that resumes), a full disk, a permission problem, a diverged loss."""

from __future__ import annotations

import errno

import torch

from engine.light import estimator, fit
from engine.light.errors import ModelSourceError
from engine.light.run_folder import RunFolder, RunFolderError
from engine.light.units import gib

GENERIC_OOM_HINT = ("lower train.micro_batch (raise grad_accum to keep the effective batch), turn on gradient "
                    "checkpointing, or lower data.cutoff; then resume from the last checkpoint")


class TrainingFailed(Exception):
    """A failure already put into words: its kind, message, hint, and config overrides that let a resume succeed."""

    def __init__(self, kind: str, message: str, hint: str = "", retry: dict | None = None):
        super().__init__(message)
        self.kind, self.message, self.hint, self.retry = kind, message, hint, retry or {}


def classify(exc: BaseException, *, phase: str = "while loading the model", config=None,
             device: str = "cpu") -> TrainingFailed:
    if isinstance(exc, torch.OutOfMemoryError):
        return TrainingFailed("out_of_memory", f"the GPU ran out of memory {phase}{_memory_facts(config, device)}",
                              _oom_hint(config))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" while writing {exc.filename}" if exc.filename else ""
        return TrainingFailed("disk_full", f"the disk is full{where} ({phase})", "free disk space, then resume the run")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TrainingFailed("permission",
                              f"cannot write {exc.filename or 'to the run folder'}: {exc.strerror} ({phase})",
                              "make the LlamaDesk data folder writable (or choose another one with --home), then "
                              "resume the run")
    if isinstance(exc, RunFolderError):
        return TrainingFailed("run_folder", str(exc))
    return TrainingFailed("internal", f"{type(exc).__name__}: {exc}", "see engine.log in the run folder for details")


def during_training(exc: BaseException, *, step: int, config, device: str, folder: RunFolder,
                    budget: int | None) -> TrainingFailed:
    """A failure inside the training loop, with what lets the run go on: the settings that fit after running out of
    memory, or the last complete checkpoint after a disk problem."""
    failed = classify(exc, phase="at the first step" if step == 0 else f"at step {step + 1}", config=config,
                      device=device)
    if failed.kind == "out_of_memory":
        peak = torch.cuda.max_memory_reserved() if device == "cuda" else None
        fix = fit.resume_safe_fix(config, budget_bytes=budget, measured_peak=peak)
        if fix is not None:
            failed.hint, failed.retry = f"to fit: {fix[0]}; then resume from the last checkpoint", fix[1]
    elif failed.kind in ("disk_full", "permission"):
        good = folder.latest_checkpoint()
        failed.hint += f" (the last complete checkpoint is step {good[0]})" if good else ""
    return failed


def diverged(step: int, folder: RunFolder) -> TrainingFailed:
    good = folder.latest_checkpoint()
    return TrainingFailed(
        "diverged", f"the loss became NaN or infinite at step {step}; training stopped",
        "lower the learning rate (halve it, for example) and check the data for extreme values; "
        + (f"the last good checkpoint is step {good[0]}, and the run can be resumed from it" if good
           else "no checkpoint was saved before it"))


def _memory_facts(config, device: str) -> str:
    """The measured peak against the estimate, as far as both are known."""
    parts = []
    if device == "cuda":
        parts.append(f"measured peak {gib(torch.cuda.max_memory_reserved())}")
    if config is not None:
        try:
            parts.append(f"estimated need {gib(estimator.estimate(fit.spec_for(config.model), config).total)}")
        except ModelSourceError:  # no architecture facts for this model
            pass
    return f" ({', '.join(parts)})" if parts else ""


def _oom_hint(config) -> str:
    free = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
    if free and config is not None:
        try:
            found = estimator.suggestions(fit.spec_for(config.model), config, free)
        except ModelSourceError:
            found = []
        if found:
            return f"to fit: {found[0].change}; then resume from the last checkpoint"
    return GENERIC_OOM_HINT
