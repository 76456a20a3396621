"""The time estimate before Start: a short trial with the run's settings and data, extrapolated from measured parts;
from the command line and from the Train page."""

from __future__ import annotations

import pytest

from engine.heavy import time_trial
from engine.light import config as run_config
from engine.light import protocol
from tests.engine_driver import EngineProcess


def _config(tiny_model, dataset, **train):
    return run_config.from_mapping({"model": str(tiny_model), "dataset": str(dataset), "quantization": "none",
                                    "data": {"validation_share": 0.2}, "train": train})


def test_the_planned_steps_and_evaluations_follow_the_schedule(tiny_model, small_dataset):
    config = _config(tiny_model, small_dataset, micro_batch=4, grad_accum=2, epochs=3.0)
    assert time_trial.planned_steps(config, train_rows=32) == 12  # 4 micro-batches per epoch, 2 per step, 3 epochs
    assert time_trial.planned_steps(config, train_rows=33) == 15  # a partial last micro-batch is a step's worth
    assert time_trial.planned_evaluations(config, 12, True) == 3  # once an epoch
    assert time_trial.planned_evaluations(config.with_values({"train.eval_steps": 5}), 12, True) == 2
    assert time_trial.planned_evaluations(config, 12, False) == 0
    assert time_trial.planned_steps(config.with_values({"train.max_steps": 7}), train_rows=32) == 7


@pytest.mark.slow
def test_time_measures_a_trial_and_leaves_no_run_behind(home, tiny_model, small_dataset):
    engine = EngineProcess(home, "time", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={small_dataset}",
                           "--set", "quantization=none", "--set", "data.validation_share=0.2", "--set",
                           "train.epochs=2", "--set", "train.compare_prompts=2")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    estimate = next(m for m in engine.messages if isinstance(m, protocol.TimeEstimate))
    assert estimate.steps == 2 * 4  # 32 training rows: 8 micro-batches of 4, 2 per step, 2 epochs
    assert estimate.step_s > 0 and estimate.trial_s > 0
    assert set(estimate.parts) == {"loading", "training", "evaluation", "comparison"}
    assert estimate.seconds == pytest.approx(sum(estimate.parts.values()))
    assert estimate.parts["training"] == pytest.approx(estimate.steps * estimate.step_s)
    assert estimate.parts["evaluation"] > 0 and estimate.parts["comparison"] > 0
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())  # the trial kept nothing


@pytest.mark.slow
def test_the_train_page_estimates_and_can_cancel(qtbot, home, tiny_model, small_dataset):
    from gui.app_state import AppState
    from gui.pages.train_page import TrainPage

    state = AppState(str(home))
    state.set_config(_config(tiny_model, small_dataset))
    page = TrainPage(state)  # the real engine
    qtbot.addWidget(page)
    page.time_button.click()
    assert page.time_button.text() == "Cancel the estimate"
    page.time_button.click()
    assert page.time_label.text() == "Cancelled." and not page.time_job.is_running()
    with qtbot.waitSignal(page.time_job.sig_done, timeout=120_000):
        page.time_button.click()
    assert page.time_label.text().startswith("About ") and "training" in page.time_label.text()
    assert "training steps of" in page.time_label.toolTip()  # the exact measures beside the plain sentence
    state.update({"train.epochs": 4.0})
    assert page.time_label.text() == "The settings changed since the estimate: estimate again."
