"""The run folder's lock: a live engine is recognised by its process id and creation time, never by a signal; a lock
left by a dead engine, or naming a process id that another program now has, is reclaimed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from engine.light.run_folder import RunFolder, RunFolderError


@pytest.fixture
def folder(home):
    return RunFolder.create("locked")


@pytest.fixture(autouse=True)
def no_signals(monkeypatch):
    """Liveness must never be asked with os.kill: on Windows signal 0 is CTRL_C_EVENT."""
    real_kill = os.kill

    def refuse(pid, sig):
        if sig == 0:
            raise AssertionError(f"os.kill({pid}, 0) was called to check liveness")
        return real_kill(pid, sig)  # the fixtures' own clean-up may end their processes

    monkeypatch.setattr(os, "kill", refuse)


@pytest.fixture
def other_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield psutil.Process(process.pid)
    process.terminate()
    process.wait(10)


def _write_lock(folder: RunFolder, **fields) -> None:
    (folder.path / "lock").write_text(json.dumps(fields))


def test_a_live_engine_holds_its_folder(folder, other_process):
    _write_lock(folder, pid=other_process.pid, created=other_process.create_time())
    assert folder.lock_holder() == other_process.pid
    with pytest.raises(RunFolderError, match=f"in use by engine process {other_process.pid}"):
        folder.acquire_lock()


def test_a_reused_process_id_does_not_hold_the_folder(folder, other_process):
    """The engine died and another program got its pid: the creation time differs, so the lock is stale."""
    _write_lock(folder, pid=other_process.pid, created=other_process.create_time() - 3600)
    assert folder.lock_holder() is None
    folder.acquire_lock()
    assert json.loads((folder.path / "lock").read_text())["pid"] == os.getpid()
    assert other_process.is_running(), "the other program is left alone"


def test_an_older_lock_without_a_creation_time_is_judged_by_its_start(folder, other_process):
    before = datetime.fromtimestamp(other_process.create_time() - 600).isoformat(timespec="seconds")
    _write_lock(folder, pid=other_process.pid, started=before)
    assert folder.lock_holder() is None  # the process is newer than the lock: not its writer
    after = datetime.fromtimestamp(other_process.create_time() + 5).isoformat(timespec="seconds")
    _write_lock(folder, pid=other_process.pid, started=after)
    assert folder.lock_holder() == other_process.pid


def test_a_dead_engine_leaves_a_lock_that_is_reclaimed(folder):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    created = psutil.Process(process.pid).create_time()
    process.wait(10)
    _write_lock(folder, pid=process.pid, created=created)
    assert folder.lock_holder() is None
    folder.acquire_lock()
    assert folder.lock_holder() == os.getpid()
    folder.release_lock()
    assert not (folder.path / "lock").exists()


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"pid": "12"}', '{"pid": -5}', '{"pid": true}'])
def test_a_damaged_lock_is_reclaimed(folder, content):
    (folder.path / "lock").write_text(content)
    assert folder.lock_holder() is None
    folder.acquire_lock()
    assert folder.lock_holder() == os.getpid()


def test_two_engines_reclaiming_the_same_stale_lock_cannot_both_win(folder):
    _write_lock(folder, pid=2**22 + 12345, created=1.0)  # no such process
    outcomes = []

    def claim():
        try:
            RunFolder(folder.path).acquire_lock()
            outcomes.append("won")
        except RunFolderError:
            outcomes.append("refused")

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 3 + ["won"]


def test_a_run_is_found_by_name_even_beside_a_folder_of_that_name(home, tmp_path, monkeypatch):
    """The window names runs; a folder called like the run where the engine starts (a "bench" folder in a checkout)
    must not stand in for it, while a run given by its folder is still that folder."""
    run = home / "runs" / "bench"
    run.mkdir(parents=True)
    (run / RunFolder.CONFIG).write_text("model: demo\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench").mkdir()  # no run: no config in it
    assert RunFolder.find("bench").path == run
    other = tmp_path / "elsewhere" / "bench"
    other.mkdir(parents=True)
    (other / RunFolder.CONFIG).write_text("model: demo\n", encoding="utf-8")
    assert RunFolder.find(other).path == other and RunFolder.find("elsewhere/bench").path == Path("elsewhere/bench")
    assert RunFolder.find("never-made").path == home / "runs" / "never-made"
