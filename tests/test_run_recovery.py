"""Recovering from what goes wrong around a run: a full disk or a read-only folder while saving, out-of-memory
with a one-step retry, the app dying mid-run, and a second run on the same GPU."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import peft.peft_model
import psutil
import pytest
import torch

from engine.heavy import train
from engine.heavy.control import Control
from engine.light import config as run_config
from engine.light import disk, protocol, run_folder
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess
from tests.test_engine_failures import AtStep, Recorder, _config, _out_of_memory


def _failing_save(real, marker: str, error: OSError):
    """Wraps a save function: writes part of the file for paths containing ``marker``, then fails like the disk."""

    def save(obj, path, *args, **kwargs):
        if marker in str(path):
            with open(path, "wb") as handle:
                handle.write(b"\0" * 1024)
            raise error.__class__(error.errno, os.strerror(error.errno), str(path))
        return real(obj, path, *args, **kwargs)

    return save


def test_disk_full_while_writing_a_checkpoint_leaves_only_complete_ones_and_resumes(home, tiny_model, small_dataset,
                                                                                  monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save", _failing_save(real_save, "checkpoint-3", OSError(errno.ENOSPC, "")))
    recorder = Recorder()
    assert train.run(_config(tiny_model, small_dataset, "full"), emitter=recorder, control=Control()) == 1
    error = recorder.error()
    assert error.kind == "disk_full" and "checkpoint-3" in error.message, error
    assert "free disk space" in error.hint and "step 2" in error.hint
    run_dir = home / "runs" / "full"
    assert [s for s, _ in RunFolder(run_dir).checkpoints()] == [1, 2]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-1", "step-2"]
    monkeypatch.setattr(torch, "save", real_save)  # space was freed
    resumed = Recorder()
    assert train.run(None, emitter=resumed, control=Control(), resume_dir=run_dir) == 0
    steps = [r["step"] for r in run_folder.read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 7))
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_permission_error_while_saving_the_adapter_leaves_no_partial_adapter(home, tiny_model, small_dataset,
                                                                             monkeypatch):
    real_save = peft.peft_model.safe_save_file
    monkeypatch.setattr(peft.peft_model, "safe_save_file",  # the adapter's weights file, as PEFT writes it
                        _failing_save(real_save, "adapter.tmp", PermissionError(errno.EACCES, "")))
    recorder = Recorder()
    assert train.run(_config(tiny_model, small_dataset, "readonly"), emitter=recorder, control=Control()) == 1
    error = recorder.error()
    assert error.kind == "permission" and "Permission denied" in error.message and "writable" in error.hint
    run_dir = home / "runs" / "readonly"
    assert not (run_dir / "adapter").exists() and not (run_dir / "adapter.tmp").exists()
    assert RunFolder(run_dir).latest_checkpoint()[0] == 6
    monkeypatch.setattr(peft.peft_model, "safe_save_file", real_save)
    assert train.run(None, emitter=Recorder(), control=Control(), resume_dir=run_dir) == 0
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_too_little_disk_is_refused_before_the_first_step_and_a_busy_gpu_is_warned_about(home, tiny_model,
                                                                                       small_dataset, monkeypatch):
    other = home / "runs" / "someone-else"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("model: demo\n")
    # A live process holds it: this one, with its creation time as an engine records it.
    (other / "lock").write_text(json.dumps({"pid": os.getpid(), "created": psutil.Process().create_time()}))
    monkeypatch.setattr(disk, "free_bytes", lambda folder: 100 * 2**20)
    recorder = Recorder()
    assert train.run(_config(tiny_model, small_dataset, "nospace"), emitter=recorder, control=Control()) == 1
    warning = next(m for m in recorder.messages if isinstance(m, protocol.Warning))
    assert "someone-else" in warning.message
    error = recorder.error()
    assert error.kind == "disk_full" and "need about" in error.message and "100 MiB is free" in error.message
    assert not any(isinstance(m, protocol.Progress) for m in recorder.messages)
    assert RunFolder(home / "runs" / "nospace").checkpoints() == []


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_out_of_memory_offers_a_retry_that_resumes_with_a_smaller_micro_batch(home, tiny_model, small_dataset):
    config = _config(tiny_model, small_dataset, "oomretry", micro_batch=4, grad_accum=2)
    recorder = Recorder()
    assert train.run(config, emitter=recorder, control=Control(), callbacks=(AtStep(3, _out_of_memory),)) == 1
    error = recorder.error()
    assert error.retry == {"train.micro_batch": 2, "train.grad_accum": 4}
    assert "micro-batch 2" in error.hint
    run_dir = home / "runs" / "oomretry"
    sets = [arg for key, value in error.retry.items() for arg in ("--set", f"{key}={value}")]
    engine = EngineProcess(home, "train", "--json", "--resume", str(run_dir), *sets)
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    assert protocol.State("finished") in engine.messages
    saved = run_config.load(run_dir / "config.yaml")
    assert (saved.train.micro_batch, saved.train.grad_accum) == (2, 4)
    steps = [r["step"] for r in run_folder.read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 7))


def _events(run_dir):
    return run_folder.read_jsonl(run_dir / "events.jsonl")


def _wait_for_event(run_dir, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _events(run_dir) if predicate(e)]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no such event; last: {_events(run_dir)[-3:]}")


# The app, as far as the engine can tell: a parent holding the engine's three pipes. It prints the engine's pid once
# training has begun, then waits to be killed.
APP = """
import subprocess, sys
engine = subprocess.Popen([sys.executable, "-m", "engine", "train", "--json", *sys.argv[1:]],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
for line in engine.stdout:
    if b'"progress"' in line:
        print(engine.pid, flush=True)
        break
sys.stdin.read()
"""


@pytest.mark.slow
def test_the_run_outlives_its_app_and_obeys_commands_from_the_run_folder(home, tiny_model, small_dataset):
    app = subprocess.Popen(
        [sys.executable, "-c", APP, "--set", f"model={tiny_model}", "--set", f"dataset={small_dataset}",
         "--set", "quantization=none", "--set", "train.max_steps=100000", "--set", "train.save_steps=10",
         "--set", "data.validation_share=0", "--set", "run_name=orphan"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ, LLAMADESK_HOME=str(home)))
    engine = psutil.Process(int(app.stdout.readline()))
    try:
        app.kill()  # the app dies: the kernel closes every pipe end it held
        app.wait()
        run_dir = home / "runs" / "orphan"
        _wait_for_event(run_dir, lambda e: "the app went away" in e.get("message", ""))
        step = _wait_for_event(run_dir, lambda e: e["type"] == "progress")["step"]
        _wait_for_event(run_dir, lambda e: e["type"] == "progress" and e["step"] > step + 12)  # past a checkpoint
        assert engine.is_running() and RunFolder(run_dir).lock_holder() == engine.pid

        RunFolder(run_dir).send_command(protocol.Pause())  # a restarted app, which holds no pipe to the engine
        engine.wait(timeout=120)  # paused: the engine saves a checkpoint and exits (not our child: no exit code)
        assert _events(run_dir)[-1]["state"] == "paused"
        assert RunFolder(run_dir).checkpoints() and RunFolder(run_dir).lock_holder() is None
        assert RunFolder(run_dir).summary().status == "paused"
    finally:
        if engine.is_running():
            engine.kill()
