"""What the app is told when one rank of a multi-process run fails: the rank's own words, not a neighbour's lost
connection; a killed rank by its signal; and the checkpoint to resume from. First for real, through the launcher with
two CPU ranks, then the launcher's explanation for the cases a real run cannot reach on demand."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from engine.heavy import rank_launcher, time_trial
from engine.light import config as run_config
from engine.light import protocol
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess

HARNESS = [sys.executable, str(Path(__file__).with_name("out_of_memory_at.py"))]


def _two_ranks(tiny_model, dataset, name: str) -> list[str]:
    values = {"model": tiny_model, "dataset": dataset, "device": "cpu", "run_name": name,
              "distributed.cpu_processes": 2, "data.validation_share": 0, "train.compare_base": "false",
              "train.max_steps": 6, "train.save_steps": 2, "train.micro_batch": 2, "train.grad_accum": 1}
    return [part for key, value in values.items() for part in ("--set", f"{key}={value}")]


@pytest.mark.slow
def test_a_rank_out_of_memory_right_after_a_save_is_named_and_the_run_resumes_from_that_save(home, tiny_model,
                                                                                            small_dataset):
    """Rank 1 runs out of memory at step 3, right after the checkpoint of step 2, while rank 0 publishes that
    checkpoint: the client hears rank 1's own failure with the change that fits, the checkpoint stays whole, and the
    run resumes from it with that change (the Retry button's resume)."""
    engine = EngineProcess(home, "train", "--json", *_two_ranks(tiny_model, small_dataset, "oom-rank"),
                           program=HARNESS, env={"LLAMADESK_TEST_OOM_STEP": "3", "LLAMADESK_TEST_OOM_ABOVE": "1",
                                                 "LLAMADESK_TEST_OOM_RANK": "1"})
    assert engine.finish() == 1, engine.stderr.decode()[-3000:]
    folder = RunFolder(home / "runs" / "oom-rank")
    assert [m.step for m in engine.messages if isinstance(m, protocol.CheckpointSaved)] == [2]
    assert sorted(p.name for p in folder.checkpoints_dir.iterdir()) == ["step-2"]
    step, checkpoint = folder.latest_checkpoint()
    assert {"adapter_model.safetensors", "optimizer.pt", "trainer_state.json", "rng_state_0.pth",
            "rng_state_1.pth"} <= {p.name for p in checkpoint.iterdir()}
    summary = folder.summary()
    assert summary.status == "failed" and summary.resumable and folder.lock_holder() is None

    errors = [m for m in engine.messages if isinstance(m, protocol.Error)]
    print(errors)
    assert len(errors) == 1
    error = errors[0]
    assert error.kind == "out_of_memory"
    assert error.message.startswith("rank 1 of 2: the GPU ran out of memory at step 3")
    assert error.message.endswith("the other ranks were stopped")
    assert error.hint.startswith("to fit: micro-batch 1") and error.hint.endswith("resume from the last checkpoint")
    assert error.retry == {"train.micro_batch": 1, "train.grad_accum": 2}

    resumed = EngineProcess(home, "train", "--json", "--resume", "oom-rank",
                            *[part for key, value in error.retry.items() for part in ("--set", f"{key}={value}")])
    assert resumed.finish() == 0, resumed.stderr.decode()[-3000:]
    assert [m.step for m in resumed.messages if isinstance(m, protocol.Progress)][0] == step + 1
    assert [m["step"] for m in folder.metrics() if m.get("loss") is not None] == [1, 2, 3, 4, 5, 6]
    assert folder.summary().status == "finished" and folder.has_adapter


def _folder(home, name="r") -> RunFolder:
    folder = RunFolder.create(name)
    folder.save_config(run_config.RunConfig(dataset="d.jsonl"))
    return folder


def test_the_rank_that_ran_out_of_memory_is_named_not_the_one_that_lost_it(home):
    folder = _folder(home)
    folder.record_rank_failure(0, {"kind": "internal", "message": "Connection closed by peer", "hint": "",
                                   "retry": None, "peer": True})
    folder.record_rank_failure(1, {"kind": "out_of_memory", "message": "the GPU ran out of memory at step 7",
                                   "hint": "lower the micro-batch", "retry": {"train.micro_batch": 2},
                                   "peer": False})
    failed = rank_launcher._explain(None, folder, 2)
    assert failed.kind == "out_of_memory" and failed.retry == {"train.micro_batch": 2}
    assert failed.message.startswith("rank 1 of 2: the GPU ran out of memory at step 7")
    assert failed.hint == "lower the micro-batch"


def test_a_rank_killed_without_a_word_is_named_by_its_signal_and_the_checkpoint_to_resume(home):
    folder = _folder(home)
    (folder.checkpoints_dir / "step-6").mkdir(parents=True)
    failure = types.SimpleNamespace(failures={
        1: types.SimpleNamespace(exitcode=-9, timestamp=10), 0: types.SimpleNamespace(exitcode=1, timestamp=12)})
    failed = rank_launcher._explain(failure, folder, 2)
    assert failed.kind == "rank_failed" and "rank 1 of 2 was killed by signal 9" in failed.message
    assert "resume the run: it continues from step 6" in failed.hint
    (folder.checkpoints_dir / "step-6").rmdir()
    assert "start the run again" in rank_launcher._explain(failure, folder, 2).hint


def test_the_time_estimate_shares_the_epochs_among_the_ranks():
    config = run_config.RunConfig(dataset="d.jsonl").with_values({"train.micro_batch": 4, "train.grad_accum": 2,
                                                                  "train.epochs": 1.0})
    assert time_trial.planned_steps(config, 800) == 100
    assert time_trial.planned_steps(config.with_values({"distributed.gpus": ["0", "1"]}), 800) == 50
    cpu = config.with_values({"device": "cpu", "distributed.cpu_processes": 4})
    assert time_trial.planned_steps(cpu, 800) == 25
