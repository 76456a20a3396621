"""Disk space a run needs for its checkpoints and adapter, checked before training starts.

A checkpoint holds the LoRA weights (fp32), the optimizer state, the tokenizer files and a little RNG and scheduler
state; rotation writes the newest before it deletes the oldest, and the adapter is written beside its old copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MARGIN_BYTES = 256 * 2**20  # logs, metrics, the dataset cache and the file system's own slack
OPTIMIZER_BYTES_PER_PARAM = {"adamw_torch": 8, "adamw_torch_fused": 8, "paged_adamw_8bit": 2, "adamw_8bit": 2,
                             "paged_adamw_32bit": 8, "sgd": 0}


def free_bytes(folder: Path) -> int:
    """Free space where ``folder`` lives (the nearest existing parent)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def tokenizer_bytes(model_folder: Path) -> int:
    names = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
             "merges.txt", "chat_template.jinja")
    return sum((Path(model_folder) / n).stat().st_size for n in names if (Path(model_folder) / n).is_file())


def run_needs(trainable_params: int, optimizer: str, keep_checkpoints: int, tokenizer_size: int) -> int:
    adapter = trainable_params * 4 + tokenizer_size
    checkpoint = adapter + trainable_params * OPTIMIZER_BYTES_PER_PARAM.get(optimizer, 8) + 2**20
    return (max(1, keep_checkpoints) + 1) * checkpoint + 2 * adapter + MARGIN_BYTES


def shortfall(folder: Path, need: int, what: str = "this run's checkpoints and adapter") -> str | None:
    """A message if ``folder``'s disk has less than ``need`` bytes free, else None."""
    free = free_bytes(folder)
    if free >= need:
        return None
    return f"not enough disk space in {folder}: {what} need about {size(need)}, and {size(free)} is free"


def size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
