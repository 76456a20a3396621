"""What the app is told when one rank of a multi-process run fails: the rank's own words, not a neighbour's lost
connection; a killed rank by its signal; and the checkpoint to resume from."""

from __future__ import annotations

import types

from engine.heavy import rank_launcher, time_trial
from engine.light import config as run_config
from engine.light.run_folder import RunFolder


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
