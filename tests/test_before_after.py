"""The base model against the fine-tune on the validation split: at the end of training, and again from the command
line for a finished run (also one whose folder holds no comparison yet)."""

from __future__ import annotations

import json
import math

import pytest

from engine.light import protocol
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess


def _train(home, tiny_model, dataset, name, *extra):
    engine = EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={dataset}",
                           "--set", "quantization=none", "--set", "data.validation_share=0.2", "--set",
                           "train.max_steps=6", "--set", "train.learning_rate=0.01", "--set",
                           "train.compare_prompts=3", "--set", f"run_name={name}", *extra)
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    return engine


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model, small_dataset):
    home = tmp_path_factory.mktemp("llamadesk-home")
    engine = _train(home, tiny_model, small_dataset, "cmp")
    return home, engine


def test_training_ends_by_comparing_the_base_model_and_the_fine_tune(compared, small_dataset):
    home, engine = compared
    states = [m.state for m in engine.messages if isinstance(m, protocol.State)]
    assert states[-3:] == ["saving", "comparing", "finished"]
    result = RunFolder(home / "runs" / "cmp").evaluation()
    for side in ("before", "after"):
        assert result[side]["tokens"] > 0
        assert result[side]["perplexity"] == pytest.approx(math.exp(result[side]["loss"]))
    assert result["after"]["loss"] != result["before"]["loss"]  # six steps at 1e-2 moved the weights
    finished = next(m for m in engine.messages if isinstance(m, protocol.Finished))
    assert finished.metrics["before_loss"] == result["before"]["loss"]
    # The prompts and references come from the validation rows themselves: each reference is a reply of the dataset.
    rows = [json.loads(line) for line in small_dataset.read_text().splitlines()]
    outputs = {row["output"].strip() for row in rows}
    assert len(result["answers"]) == 3
    for answer in result["answers"]:
        assert answer["reference"] in outputs
        assert answer["prompt"].rstrip().endswith("assistant")  # the chat template's header before the reply
        assert any(answer["question"].startswith(row["instruction"].strip()) for row in rows), answer["question"]
        assert 0.0 <= answer["rouge_l_before"] <= 1.0 and 0.0 <= answer["rouge_l_after"] <= 1.0


@pytest.mark.slow
def test_eval_compares_a_finished_run_again_from_the_command_line(compared):
    home, _ = compared
    folder = RunFolder(home / "runs" / "cmp")
    first = folder.evaluation()
    folder.evaluation_file.unlink()  # as for a run trained before the comparison existed
    engine = EngineProcess(home, "eval", "--json", "cmp", "--prompts", "2")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    again = folder.evaluation()
    assert len(again["answers"]) == 2
    for side in ("before", "after"):  # the same weights and split: the same losses and greedy answers
        assert again[side]["loss"] == pytest.approx(first[side]["loss"], rel=1e-4)
    assert [a["after"] for a in again["answers"]] == [a["after"] for a in first["answers"][:2]]


@pytest.mark.slow
def test_a_run_without_a_validation_split_is_not_compared_and_says_why(home, tiny_model, small_dataset):
    engine = _train(home, tiny_model, small_dataset, "noval", "--set", "data.validation_share=0")
    assert "comparing" not in [m.state for m in engine.messages if isinstance(m, protocol.State)]
    assert any("no validation split" in m.message for m in engine.messages if isinstance(m, protocol.Log))
    again = EngineProcess(home, "eval", "--json", "noval")
    assert again.finish() == 1
    error = next(m for m in again.messages if isinstance(m, protocol.Error))
    assert error.kind == "evaluation" and "no validation split" in error.message and "validation_share" in error.hint
