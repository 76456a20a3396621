"""Run folders: the contract between the engine and every client, and the memory of a run.

    runs/<name>/ config.yaml · events.jsonl · metrics.jsonl · engine.log · lock · commands.jsonl · checkpoints/step-N/ · adapter/

Clients rebuild every view from these files, so each is written append-only and flushed per line, and checkpoints
appear under their final name only when complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from engine import paths

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")
LOCK_FILE = "lock"
COMMANDS_FILE = "commands.jsonl"  # stop / pause / resume from a client that did not start the engine


class RunFolderError(Exception):
    pass


def new_run_dir(name: str = "") -> Path:
    """A new, empty run folder; a dated name unless ``name`` is given. Names cannot leave the runs folder."""
    root = paths.runs_dir()
    if name:
        if Path(name).name != name or name in (".", "..") or name.startswith("."):
            raise RunFolderError(f"'{name}' is not a plain folder name")
        folder = root / name
        if folder.exists():
            raise RunFolderError(f"a run named '{name}' already exists in {root}")
        folder.mkdir(parents=True)
        return folder
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
        folder = root / f"run-{stamp}{suffix}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RunFolderError("could not create a run folder")


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first. Partial ones never carry the step-N name."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def acquire_lock(run_dir: Path) -> Path:
    """Claim the run folder for this process; a folder held by a live engine cannot be claimed twice."""
    lock = run_dir / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_pid(lock)
            if holder is not None and _alive(holder):
                raise RunFolderError(f"{run_dir.name} is in use by engine process {holder}") from None
            lock.unlink(missing_ok=True)  # left behind by an engine that died
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump({"pid": os.getpid(), "started": datetime.now().isoformat(timespec="seconds")}, handle)
        return lock
    raise RunFolderError(f"could not lock {run_dir}")


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the live engine that holds this run folder, or None."""
    pid = _lock_pid(run_dir / LOCK_FILE)
    return pid if pid is not None and _alive(pid) else None


def busy_runs() -> list[tuple[str, int]]:
    """(run name, engine pid) for every run a live engine holds."""
    root = paths.runs_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        holder = lock_holder(folder) if folder.is_dir() else None
        if holder is not None:
            found.append((folder.name, holder))
    return found


def release_lock(run_dir: Path) -> None:
    lock = run_dir / LOCK_FILE
    if _lock_pid(lock) == os.getpid():
        lock.unlink(missing_ok=True)


def _lock_pid(lock: Path) -> int | None:
    try:
        return int(json.loads(lock.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines after ``last_step``: a resumed run repeats those steps and logs them again."""
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= last_step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    os.replace(tmp, path)


def fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Trainer writes checkpoint-N first; any left without the step-N name were interrupted mid-write."""
    folder = run_dir / "checkpoints"
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and not CHECKPOINT_RE.match(child.name):
                shutil.rmtree(child, ignore_errors=True)


def send_command(run_dir: Path, msg) -> None:
    """Queue a command for the engine that holds ``run_dir`` (it polls the file twice a second)."""
    from engine import protocol

    with (run_dir / COMMANDS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(protocol.encode(msg) + "\n")
