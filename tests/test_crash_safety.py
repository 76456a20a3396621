"""SIGKILL at ten different moments of a run, then resume: the run folder stays consistent and the run finishes
with continuous metrics. The writes of a checkpoint and of the adapter are killed at a known point inside them (half
the weights file on disk, the process held there by tests/hold_write.py); the other moments follow the run's events."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.light import protocol, run_folder
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess

pytestmark = pytest.mark.slow  # ten engine runs killed and resumed: minutes

STEPS = 8
CHECKPOINT_FILES = ("adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt",
                    "trainer_state.json", "llamadesk.json")


def _is(kind, **fields):
    def match(msg):
        return isinstance(msg, kind) and all(getattr(msg, k) == v for k, v in fields.items())

    return match


MOMENTS = {  # moment: (the event to wait for, then a delay) or the file whose write is held half-way
    "loading the model": (_is(protocol.State, state="loading_model"), 0.0),
    "preparing the data": (_is(protocol.State, state="preparing_data"), 0.0),
    "before the first step": (_is(protocol.State, state="training"), 0.0),
    "during step 2": (_is(protocol.Progress, step=1), 0.05),
    "inside the write of checkpoint 2": "checkpoint-2",
    "inside the write of checkpoint 4": "checkpoint-4",
    "just after checkpoint 3": (_is(protocol.CheckpointSaved, step=3), 0.0),
    "evaluating": (_is(protocol.Progress, step=3), 0.0),
    "after evaluation": (_is(protocol.Eval), 0.0),
    "inside the write of the adapter": "adapter.tmp",
}
HOLD = [sys.executable, str(Path(__file__).with_name("hold_write.py"))]


def _complete_weights(path: Path) -> None:
    """The file is whole: every tensor its header names can be read."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as weights:
        assert [weights.get_tensor(name).numel() for name in weights.keys()]


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_then_resume(home, tmp_path, tiny_model, small_dataset, moment):
    name = "kill-" + moment.replace(" ", "-")
    arguments = ["train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={small_dataset}", "--set",
                 "quantization=none", "--set", f"run_name={name}", "--set", f"train.max_steps={STEPS}", "--set",
                 "train.save_steps=1", "--set", "train.eval_steps=3", "--set", "data.validation_share=0.1", "--set",
                 "train.micro_batch=2"]
    if isinstance(MOMENTS[moment], str):
        marker = tmp_path / "held"
        engine = EngineProcess(home, *arguments, program=HOLD, env={"LLAMADESK_TEST_HOLD_AT": MOMENTS[moment],
                                                                      "LLAMADESK_TEST_HOLD_MARKER": str(marker)})
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert engine.proc.poll() is None and time.monotonic() < deadline, engine.stderr.decode()[-2000:]
            time.sleep(0.05)
        assert "bytes written" in marker.read_text()
    else:
        trigger, delay = MOMENTS[moment]
        engine = EngineProcess(home, *arguments)
        engine.wait_for(trigger)
        time.sleep(delay)
    os.kill(engine.proc.pid, signal.SIGKILL)
    engine.finish()
    run_dir = home / "runs" / name

    # Consistent after the kill: config intact, metrics readable, each step-N checkpoint complete.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["max_steps"] == STEPS
    metrics = run_folder.read_jsonl(run_dir / "metrics.jsonl")
    steps = [m["step"] for m in metrics if "loss" in m]
    assert steps == list(range(1, len(steps) + 1))
    for _, checkpoint in RunFolder(run_dir).checkpoints():
        for file in CHECKPOINT_FILES:
            assert (checkpoint / file).is_file(), (checkpoint, file)
        json.loads((checkpoint / "trainer_state.json").read_text())
        _complete_weights(checkpoint / "adapter_model.safetensors")
    assert not (run_dir / "adapter").exists(), "no adapter is published before the run finishes"

    resumed = EngineProcess(home, "train", "--json", "--resume", str(run_dir))
    assert resumed.finish() == 0, resumed.stderr.decode()[-2000:]
    assert any(isinstance(m, protocol.Finished) for m in resumed.messages)
    steps = [m["step"] for m in run_folder.read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]
    assert steps == list(range(1, STEPS + 1)), "metrics continue without duplicated or missing steps"
    _complete_weights(run_dir / "adapter" / "adapter_model.safetensors")
    assert not (run_dir / "adapter.tmp").exists()
    assert not [p for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith("step-")]
    assert not (run_dir / "lock").exists()
