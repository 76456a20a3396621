"""Experiment tracking through the Trainer's integrations: TensorBoard event files in the run folder and MLflow in a
local store, each read back with the library's own reader; a tracker that is not installed stops the run with the
command that installs it."""

from __future__ import annotations

import importlib.util

import pytest

from engine.light import protocol, tracking
from tests.engine_driver import EngineProcess


def _train(home, tiny_model, dataset, name, trackers):
    return EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={dataset}",
                         "--set", "quantization=none", "--set", "train.max_steps=4", "--set",
                         "train.compare_base=false", "--set", f"train.report_to={trackers}", "--set",
                         f"run_name={name}")


@pytest.mark.slow
def test_tensorboard_and_mlflow_record_the_run(home, tiny_model, small_dataset, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    engine = _train(home, tiny_model, small_dataset, "tracked", "[tensorboard, mlflow]")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    logs = [m.message for m in engine.messages if isinstance(m, protocol.Log)]
    assert any(f"tensorboard --logdir {home / 'runs' / 'tracked'}" in line for line in logs)
    assert any("mlflow ui --backend-store-uri file://" in line for line in logs)

    events = EventAccumulator(str(home / "runs" / "tracked" / tracking.TENSORBOARD_DIR))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4] and all(e.value > 0 for e in losses)

    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    monkeypatch.setenv(tracking.MLFLOW_FILE_STORE_OPT_IN, "true")
    client = MlflowClient(tracking_uri=tracking.mlflow_uri())
    experiment = client.get_experiment_by_name(tracking.MLFLOW_EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tracked" and run.data.params["learning_rate"] == "0.0002"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx([e.value for e in losses], rel=1e-5)  # the same run


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_a_tracker_that_is_not_installed_stops_the_run_with_how_to_install_it(home, tiny_model, small_dataset):
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    engine = _train(home, tiny_model, small_dataset, "untracked", "[wandb]")
    assert engine.finish() == 1
    error = next(m for m in engine.messages if isinstance(m, protocol.Error))
    assert error.kind == "tracking" and "wandb" in error.message and error.hint.startswith("pip install wandb")


def test_a_tracker_that_does_not_exist_is_refused_by_name(home):
    engine = EngineProcess(home, "config", "--set", "dataset=d.jsonl", "--set", "train.report_to=[tensorbord]")
    assert engine.finish() != 0
    assert "'tensorbord' is not one of tensorboard, mlflow, wandb" in engine.stderr.decode()
