"""Measured GPU peaks of finished runs on this machine, kept beside their estimates, so the estimator's figure can
be compared with reality for similar runs. One JSON line per run in <home>/calibration.jsonl."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from engine import paths, runs
from engine.estimator import Settings

FILE = "calibration.jsonl"


def record(model: str, settings: Settings, estimated: int, reserved_peak: int, allocated_peak: int,
           gpu_name: str, home: Path | None = None) -> None:
    entry = {"date": datetime.now().isoformat(timespec="seconds"), "model": model, "gpu": gpu_name,
             "settings": asdict(settings), "estimated_bytes": estimated, "reserved_peak_bytes": reserved_peak,
             "allocated_peak_bytes": allocated_peak}
    home = home or paths.home()
    home.mkdir(parents=True, exist_ok=True)
    writer = runs.JsonLines(home / FILE)
    writer.write(entry)
    writer.close()


def similar(model: str, settings: Settings, home: Path | None = None, limit: int = 3) -> list[dict]:
    """Past runs of the same model and quantization, closest in tokens per step first."""
    entries = runs.read_jsonl((home or paths.home()) / FILE)
    same = [e for e in entries if e.get("model") == model
            and e.get("settings", {}).get("quantization") == settings.quantization]

    def distance(entry: dict) -> tuple:
        s = entry["settings"]
        return (s.get("gradient_checkpointing") != settings.gradient_checkpointing,
                abs(s.get("micro_batch", 0) * s.get("seq_len", 0) - settings.tokens),
                abs(s.get("lora_rank", 0) - settings.lora_rank))

    return sorted(same, key=distance)[:limit]


def describe(entry: dict) -> str:
    s, gib = entry["settings"], 2**30
    ratio = entry["reserved_peak_bytes"] / entry["estimated_bytes"] if entry["estimated_bytes"] else 0
    return (f"{entry['date'][:10]} on {entry['gpu']}: micro-batch {s['micro_batch']} × {s['seq_len']} tokens, "
            f"rank {s['lora_rank']}, checkpointing {'on' if s['gradient_checkpointing'] else 'off'} — measured "
            f"{entry['reserved_peak_bytes'] / gib:.2f} GiB vs estimated {entry['estimated_bytes'] / gib:.2f} GiB "
            f"({ratio:.0%})")
