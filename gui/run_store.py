"""Reads run folders into summaries for the Runs, Train and Chat pages. Standard library and YAML only.

Everything is rebuilt from the files the engine writes (config.yaml, events.jsonl, metrics.jsonl, lock), so runs
started from the command line appear too, and the app can be closed or crash without losing anything.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from engine import paths, runs


@dataclass
class RunSummary:
    name: str
    folder: Path
    status: str  # running, finished, stopped, failed, crashed, unknown
    model: str = ""
    dataset: str = ""
    steps: int = 0
    total_steps: int = 0
    final_loss: float | None = None
    started: datetime | None = None
    duration_s: float | None = None
    error: str = ""
    config: dict = field(default_factory=dict, repr=False)

    @property
    def has_adapter(self) -> bool:
        return (self.folder / "adapter" / "adapter_config.json").is_file()

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "failed", "crashed") and bool(runs.checkpoints(self.folder))


def list_runs(root: Path | None = None) -> list[RunSummary]:
    root = root or paths.runs_dir()
    found = [summarize(p) for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file()]
    return sorted(found, key=lambda r: r.started or datetime.min, reverse=True)


def summarize(folder: Path) -> RunSummary:
    summary = RunSummary(folder.name, folder, "unknown")
    try:
        summary.config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        summary.config = {}
    summary.model = str(summary.config.get("model", ""))
    summary.dataset = Path(str(summary.config.get("dataset", ""))).name
    summary.started = datetime.fromtimestamp((folder / "config.yaml").stat().st_mtime)
    last_state = ""
    for event in runs.read_jsonl(folder / "events.jsonl"):
        kind = event.get("type")
        if kind == "state":
            last_state = event.get("state", "")
        elif kind == "progress":
            summary.steps = event.get("step", summary.steps)
            summary.total_steps = event.get("total_steps", summary.total_steps)
            summary.duration_s = event.get("elapsed_s", summary.duration_s)
            if event.get("loss") is not None:
                summary.final_loss = event["loss"]
        elif kind == "error":
            summary.error = event.get("message", "")
    summary.status = _status(folder, last_state)
    return summary


def _status(folder: Path, last_state: str) -> str:
    if last_state in ("finished", "stopped", "failed"):
        return last_state
    if runs.lock_holder(folder) is not None:
        return "running"
    return "crashed" if last_state else "unknown"


def metrics(folder: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train loss points, eval loss points) from metrics.jsonl, for the loss curve."""
    train, evaluation = [], []
    for record in runs.read_jsonl(folder / "metrics.jsonl"):
        if record.get("loss") is not None:
            train.append((record["step"], record["loss"]))
        if record.get("eval_loss") is not None:
            evaluation.append((record["step"], record["eval_loss"]))
    return train, evaluation


def delete_run(summary: RunSummary) -> None:
    if summary.status == "running":
        raise RuntimeError(f"{summary.name} is still running; stop it first")
    shutil.rmtree(summary.folder)
