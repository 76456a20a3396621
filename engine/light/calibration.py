"""Measured GPU peaks of finished runs on this machine, kept beside their estimates, so the estimator's figure can
be compared with reality for similar runs. One JSON line per run in <home>/calibration.jsonl, holding the run config
under its own field names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from engine.light import paths
from engine.light.config import RunConfig
from engine.light.run_folder import JsonLines, read_jsonl
from engine.light.units import gib

FILE = "calibration.jsonl"


def record(config: RunConfig, estimated: int, reserved_peak: int, allocated_peak: int, gpu_name: str,
           home: Path | None = None) -> None:
    entry = {"date": datetime.now().isoformat(timespec="seconds"), "gpu": gpu_name, "config": config.to_dict(),
             "estimated_bytes": estimated, "reserved_peak_bytes": reserved_peak,
             "allocated_peak_bytes": allocated_peak}
    home = home or paths.home()
    home.mkdir(parents=True, exist_ok=True)
    writer = JsonLines(home / FILE)
    writer.write(entry)
    writer.close()


def similar(config: RunConfig, home: Path | None = None, limit: int = 3) -> list[dict]:
    """Past runs of the same model and quantization, closest in tokens per step first."""
    same = [e for e in read_jsonl((home or paths.home()) / FILE)
            if isinstance(e.get("config"), dict) and e["config"].get("model") == config.model
            and e["config"].get("quantization") == config.quantization]

    def distance(entry: dict) -> tuple:
        train, data, lora = (entry["config"].get(k, {}) for k in ("train", "data", "lora"))
        tokens = train.get("micro_batch", 0) * data.get("cutoff", 0)
        return (train.get("gradient_checkpointing") != config.train.gradient_checkpointing,
                abs(tokens - config.train.micro_batch * config.data.cutoff),
                abs(lora.get("rank", 0) - config.lora.rank))

    return sorted(same, key=distance)[:limit]


def describe(entry: dict) -> str:
    train, data, lora = (entry["config"].get(k, {}) for k in ("train", "data", "lora"))
    ratio = entry["reserved_peak_bytes"] / entry["estimated_bytes"] if entry["estimated_bytes"] else 0
    return (f"{entry['date'][:10]} on {entry['gpu']}: micro-batch {train.get('micro_batch')} × {data.get('cutoff')} "
            f"tokens, rank {lora.get('rank')}, checkpointing {'on' if train.get('gradient_checkpointing') else 'off'}"
            f" — measured {gib(entry['reserved_peak_bytes'], 2)} vs estimated {gib(entry['estimated_bytes'], 2)} "
            f"({ratio:.0%})")
