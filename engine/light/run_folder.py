"""Run folders: the contract between the engine and every client, and the memory of a run.

    runs/<name>/ config.yaml · events.jsonl · metrics.jsonl · engine.log · lock · commands.jsonl
                 checkpoints/step-N/ · adapter/

``RunFolder`` owns every path in it and every reader and writer of it; no other module spells a file name. Clients
rebuild every view from these files, so each is written append-only and flushed per line, and checkpoints and the
adapter appear under their final name only when complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from engine.light import config as run_config
from engine.light import paths, protocol

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")
CREATION_TOLERANCE_S = 0.05  # process creation times are read in clock ticks (10 ms on Linux)


class RunFolderError(Exception):
    pass


class RunFolder:
    """One run's folder. Paths are properties; the engine writes through ``open_events``/``open_metrics``, the lock
    and the checkpoint helpers; clients read ``events()``, ``metrics()`` and ``summary()`` and send commands."""

    CONFIG, EVENTS, METRICS, LOG = "config.yaml", "events.jsonl", "metrics.jsonl", "engine.log"
    LOCK, COMMANDS = "lock", "commands.jsonl"  # commands: stop / pause / resume from a client that did not start it
    CHECKPOINTS, ADAPTER = "checkpoints", "adapter"
    EVALUATION = "evaluation.json"  # the base model against the fine-tune on the validation split

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ---- finding and creating --------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str = "", root: Path | None = None) -> RunFolder:
        """A new, empty run folder; a dated name unless ``name`` is given. Names cannot leave the runs folder."""
        root = root or paths.runs_dir()
        if name:
            if Path(name).name != name or name in (".", "..") or name.startswith("."):
                raise RunFolderError(f"'{name}' is not a plain folder name")
            folder = root / name
            if folder.exists():
                raise RunFolderError(f"a run named '{name}' already exists in {root}")
            folder.mkdir(parents=True)
            return cls(folder)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
            try:
                (root / f"run-{stamp}{suffix}").mkdir(parents=True)
                return cls(root / f"run-{stamp}{suffix}")
            except FileExistsError:
                continue
        raise RunFolderError("could not create a run folder")

    @classmethod
    def find(cls, reference: str | os.PathLike) -> RunFolder:
        """A run given by its folder or by its name in the runs folder. A run's name wins over a folder of the same
        name here that is no run (the window names runs, and a "bench" or "data" folder is common)."""
        path, named = Path(reference), paths.runs_dir() / str(reference)
        if path.is_dir() and ((path / cls.CONFIG).is_file() or not named.is_dir()):
            return cls(path)
        return cls(named)

    @classmethod
    def all(cls, root: Path | None = None) -> list[RunFolder]:
        """Every run folder (one with a config) under the runs folder."""
        root = root or paths.runs_dir()
        if not root.is_dir():
            return []
        return [cls(p) for p in sorted(root.iterdir()) if p.is_dir() and (p / cls.CONFIG).is_file()]

    @property
    def name(self) -> str:
        return self.path.name

    # ---- paths ---------------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def events_file(self) -> Path:
        return self.path / self.EVENTS

    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    @property
    def log_file(self) -> Path:
        return self.path / self.LOG

    @property
    def commands_file(self) -> Path:
        return self.path / self.COMMANDS

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def adapter_dir(self) -> Path:
        return self.path / self.ADAPTER

    @property
    def evaluation_file(self) -> Path:
        return self.path / self.EVALUATION

    def write_evaluation(self, result: dict) -> None:
        """Written whole or not at all: a reader never sees half a file."""
        partial = self.evaluation_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, self.evaluation_file)

    def evaluation(self) -> dict | None:
        try:
            found = json.loads(self.evaluation_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    # -- the ranks of a multi-process run ----------------------------------------------------------------------
    @property
    def ranks_dir(self) -> Path:
        """Per-rank logs and failure records; rank 0 writes the run folder's own files."""
        return self.path / "ranks"

    def rank_log(self, rank: int) -> Path:
        self.ranks_dir.mkdir(exist_ok=True)
        return self.ranks_dir / f"rank-{rank}.log"

    def record_rank_failure(self, rank: int, failure: dict) -> None:
        self.ranks_dir.mkdir(exist_ok=True)
        partial = self.ranks_dir / f"failure-{rank}.json.partial"
        partial.write_text(json.dumps({"rank": rank, "time": time.time(), **failure}, ensure_ascii=False),
                           encoding="utf-8")
        os.replace(partial, self.ranks_dir / f"failure-{rank}.json")

    def rank_failures(self) -> list[dict]:
        """The failures the ranks recorded, earliest first."""
        found = []
        for path in sorted(self.ranks_dir.glob("failure-*.json")):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda f: f.get("time", 0))

    def clear_rank_failures(self) -> None:
        for path in self.ranks_dir.glob("failure-*.json"):
            path.unlink(missing_ok=True)

    def is_run(self) -> bool:
        return self.config_file.is_file()

    @property
    def has_adapter(self) -> bool:
        return (self.adapter_dir / "adapter_config.json").is_file()

    # ---- config ----------------------------------------------------------------------------------------------
    def load_config(self, overrides: list[str] | dict[str, Any] = ()) -> run_config.RunConfig:
        return run_config.load(self.config_file, overrides)

    def save_config(self, config: run_config.RunConfig) -> None:
        run_config.save(config, self.config_file)

    # ---- events and metrics ---------------------------------------------------------------------------------
    def open_events(self) -> JsonLines:
        return JsonLines(self.events_file)

    def open_metrics(self) -> JsonLines:
        return JsonLines(self.metrics_file)

    def events(self) -> list[Any]:
        """Every protocol message the engine recorded (a torn or unknown line is skipped)."""
        return self.event_tail().read()

    def event_tail(self) -> protocol.FileTail:
        """Reads the events appended since the last read: how a client follows a live run."""
        return protocol.FileTail(self.events_file)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    def loss_points(self) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """(train loss points, eval loss points) as (step, loss): the one reader of the loss curves, for the Train
        page's chart and the Runs page's comparison. A line without a step has no place on the curve."""
        train, evaluation = [], []
        for record in self.metrics():
            if not isinstance(record, dict) or "step" not in record:
                continue
            if record.get("loss") is not None:
                train.append((record["step"], record["loss"]))
            if record.get("eval_loss") is not None:
                evaluation.append((record["step"], record["eval_loss"]))
        return train, evaluation

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric lines after ``last_step``: a resumed run repeats those steps and logs them again."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= last_step]
        tmp = self.metrics_file.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.metrics_file)

    def log_tail(self, count: int = 12) -> list[str]:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
        except OSError:
            return []

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first. Partial ones never carry the step-N name."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for child in self.checkpoints_dir.iterdir():
            match = CHECKPOINT_RE.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def publish_checkpoint(self, written: Path, step: int) -> Path:
        """Make a checkpoint the trainer wrote under a temporary name complete: synced, then renamed to step-N."""
        fsync_tree(written)
        final = self.checkpoints_dir / f"step-{step}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(written, final)
        return final

    def prune_checkpoints(self, keep: int) -> None:
        for _, old in self.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def remove_partial_checkpoints(self) -> None:
        """The trainer writes checkpoint-N first; any left without the step-N name were interrupted mid-write."""
        if self.checkpoints_dir.is_dir():
            for child in self.checkpoints_dir.iterdir():
                if child.is_dir() and not CHECKPOINT_RE.match(child.name):
                    shutil.rmtree(child, ignore_errors=True)

    def publish_adapter(self, write) -> Path:
        """adapter/, written by ``write(folder)`` into a temporary folder and renamed when complete; a failure
        removes the partial folder and leaves an earlier adapter alone."""
        tmp = self.path / (self.ADAPTER + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            write(tmp)
            fsync_tree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # never a half-written adapter; the final checkpoint still has it
            raise
        if self.adapter_dir.exists():
            shutil.rmtree(self.adapter_dir)
        os.replace(tmp, self.adapter_dir)
        return self.adapter_dir

    # ---- the lock and commands ---------------------------------------------------------------------------------
    def acquire_lock(self) -> None:
        """Claim the folder for this process; a folder held by a live engine cannot be claimed twice. A lock left by
        an engine that died (or whose process id now belongs to another program) is reclaimed."""
        lock = self.path / self.LOCK
        # The guard makes "is the holder gone? then take it over" one step: two engines reclaiming the same stale
        # lock cannot both win.
        with FileLock(str(self.path / (self.LOCK + ".guard")), timeout=30):
            holder = _lock_holder(lock)
            if holder is not None:
                raise RunFolderError(f"{self.name} is in use by engine process {holder}")
            lock.unlink(missing_ok=True)
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w") as handle:
                json.dump(_this_process(), handle)

    def release_lock(self) -> None:
        lock = self.path / self.LOCK
        if _read_lock(lock).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)

    def lock_holder(self) -> int | None:
        """The pid of the live engine that holds this folder, or None."""
        return _lock_holder(self.path / self.LOCK)

    def send_command(self, msg) -> None:
        """Queue a command for the engine that holds the folder (it polls the file twice a second)."""
        with self.commands_file.open("a", encoding="utf-8") as handle:
            handle.write(protocol.encode(msg) + "\n")

    # ---- the summary clients show ------------------------------------------------------------------------------
    def summary(self) -> RunSummary:
        summary = RunSummary(self.name, self, "unknown")
        try:
            summary.config = run_config.read_yaml(self.config_file)
        except run_config.ConfigError:
            summary.config = {}
        if not isinstance(summary.config, dict):
            summary.config = {}
        summary.model = str(summary.config.get("model", ""))
        summary.dataset = Path(str(summary.config.get("dataset", ""))).name
        if self.config_file.exists():
            summary.started = datetime.fromtimestamp(self.config_file.stat().st_mtime)
        last_state = ""
        for event in self.events():
            if isinstance(event, protocol.State):
                last_state = event.state
            elif isinstance(event, protocol.Progress):
                summary.steps, summary.total_steps, summary.duration_s = event.step, event.total_steps, event.elapsed_s
                if event.loss is not None:
                    summary.final_loss = event.loss
            elif isinstance(event, protocol.Error):
                summary.error = event.message
        summary.status = last_state if last_state in protocol.TERMINAL_STATES else (
            "running" if self.lock_holder() is not None else "crashed" if last_state else "unknown")
        return summary

    def delete(self) -> None:
        if self.lock_holder() is not None:
            raise RuntimeError(f"{self.name} is still running; stop it first")
        shutil.rmtree(self.path)


@dataclass
class RunSummary:
    """What the Runs, Train and Chat pages show of a run, rebuilt from its folder."""

    name: str
    folder: RunFolder
    status: str  # running, finished, stopped, paused, failed, crashed, unknown
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
        return self.folder.has_adapter

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "paused", "failed", "crashed") and bool(self.folder.checkpoints())


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Every run's summary, newest first."""
    found = [folder.summary() for folder in RunFolder.all(root)]
    return sorted(found, key=lambda r: r.started or datetime.min, reverse=True)


def busy_runs() -> list[tuple[RunFolder, int]]:
    """(run folder, engine pid) for every run a live engine holds."""
    found = []
    for folder in RunFolder.all():
        holder = folder.lock_holder()
        if holder is not None:
            found.append((folder, holder))
    return found


def _this_process() -> dict:
    me = psutil.Process()
    return {"pid": me.pid, "created": me.create_time(), "started": datetime.now().isoformat(timespec="seconds")}


def _read_lock(lock: Path) -> dict:
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _lock_holder(lock: Path) -> int | None:
    """The pid in the lock if that process is the one that wrote it. A process id can be reused by another program
    after the engine died, so the process's creation time must match the one recorded (never a signal: on Windows
    signal 0 would be a Ctrl+C)."""
    data = _read_lock(lock)
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:  # no access to its details (another user's process): it exists, so count it as live
        return pid
    recorded = data.get("created")
    if isinstance(recorded, (int, float)):
        return pid if abs(created - recorded) < CREATION_TOLERANCE_S else None
    # A lock from before creation times were recorded: its writer started before it wrote the lock.
    try:
        written = datetime.fromisoformat(str(data.get("started"))).timestamp()
    except ValueError:
        return None
    return pid if created <= written + 1 else None


class JsonLines:
    """An append-only JSON-lines file, flushed (and fsynced) per line so a crash loses at most the line in flight."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def write(self, record: dict | str) -> None:
        line = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
        self._handle.write(line + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_jsonl(path: Path) -> list[dict]:
    """All complete, valid lines (a torn last line from a crash is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
