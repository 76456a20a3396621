"""Which device trains, in which precision, with which optimizer. torch is imported inside the functions."""

from __future__ import annotations

import platform

import torch


def describe(kind: str = "auto") -> dict:

    if kind != "cpu" and torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {
            "kind": "cuda",
            "name": props.name,
            "count": torch.cuda.device_count(),
            "capability": f"{props.major}.{props.minor}",
            "bf16": bool(torch.cuda.is_bf16_supported()),
            "total_bytes": int(props.total_memory),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
    return {"kind": "cpu", "name": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "bf16": False, "torch": torch.__version__}


def resolve_device(requested: str) -> str:

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but no CUDA GPU is available to torch")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def compute_dtype(requested: str, device: str):

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def optimizer(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    return "paged_adamw_8bit" if device == "cuda" else "adamw_torch"


def release_memory() -> None:
    """Return memory held by models just deleted: collect their cycles, then give cached GPU blocks back."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
