"""The comparison with the base model after training reports its progress prompt by prompt, and a client can skip
it: the run then finishes with its adapter and without evaluation.json, and says how to compute it later."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.light import protocol
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess

HELD = [sys.executable, str(Path(__file__).with_name("held_comparison.py"))]


def _train(home, tiny_model, dataset, name, *, program=None):
    return EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={dataset}",
                         "--set", "quantization=none", "--set", "data.validation_share=0.2", "--set",
                         "train.max_steps=3", "--set", "train.compare_prompts=4", "--set", f"run_name={name}",
                         program=program)


@pytest.mark.slow
def test_skipping_after_the_first_prompt_finishes_with_the_adapter_and_no_evaluation(home, tiny_model,
                                                                                      small_dataset):
    engine = _train(home, tiny_model, small_dataset, "skipped", program=HELD)
    engine.wait_for(lambda m: isinstance(m, protocol.CompareProgress) and m.stage == "answers" and m.done == 1)
    engine.send(protocol.SkipComparison())
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]

    folder = RunFolder(home / "runs" / "skipped")
    assert folder.has_adapter and folder.evaluation() is None and not folder.evaluation_file.exists()
    answered = [m.done for m in engine.messages if isinstance(m, protocol.CompareProgress) and m.stage == "answers"]
    assert max(answered) == 1, answered  # the second prompt was the last one started; none was reported done after
    states = [m for m in engine.messages if isinstance(m, protocol.State)]
    assert [s.state for s in states][-2:] == ["comparing", "finished"]
    assert "skipped" in states[-1].detail and "llamadesk-engine eval skipped" in states[-1].detail
    finished = next(m for m in engine.messages if isinstance(m, protocol.Finished))
    assert "before_loss" not in finished.metrics and finished.metrics["train_loss"] > 0
    assert any("llamadesk-engine eval skipped" in m.message for m in engine.messages if isinstance(m, protocol.Log))
    assert folder.summary().status == "finished"


@pytest.mark.slow
def test_the_comparison_reports_each_prompt_with_the_time_left_and_the_losses_are_named(home, tiny_model,
                                                                                        small_dataset):
    engine = _train(home, tiny_model, small_dataset, "whole")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    progress = [m for m in engine.messages if isinstance(m, protocol.CompareProgress)]
    assert [(m.stage, m.done, m.total) for m in progress] == [("loss", 0, 2), ("loss", 1, 2)] + [
        ("answers", done, 4) for done in range(5)]
    assert progress[2].eta_s is None  # nothing answered yet: nothing to measure from
    assert all(m.eta_s is not None and m.eta_s >= 0 for m in progress[3:])
    assert [m.elapsed_s for m in progress] == sorted(m.elapsed_s for m in progress)
    finished = next(m for m in engine.messages if isinstance(m, protocol.Finished))
    last = [m.loss for m in engine.messages if isinstance(m, protocol.Progress)][-1]
    assert finished.metrics["last_loss"] == last  # the Runs page's number, beside the run's average (train_loss)
    assert len(RunFolder(home / "runs" / "whole").evaluation()["answers"]) == 4


def test_skip_comes_through_stdin_the_commands_file_and_on_to_the_ranks(tmp_path):
    import os

    from engine.heavy.control import Control

    control = Control()
    assert not control.comparison_skipped()
    read, write = os.pipe()
    thread = control.listen(read)
    os.write(write, (protocol.encode(protocol.SkipComparison()) + "\n").encode())
    os.close(write)
    thread.join(timeout=10)
    assert control.comparison_skipped() and not control.stop.is_set() and not control.pause.is_set()

    followed = Control()
    commands = tmp_path / "commands.jsonl"
    followed.watch_file(commands, interval_s=0.05)
    try:
        commands.write_text(protocol.encode(protocol.SkipComparison()) + "\n")
        assert followed.skip_comparison.wait(10)
    finally:
        followed.unwatch()

    launcher, ranks_file = Control(), tmp_path / "ranks-commands.jsonl"
    launcher.forward_to(ranks_file)
    launcher.handle(protocol.SkipComparison())
    assert protocol.decode(ranks_file.read_text().strip()) == protocol.SkipComparison()

    stopping = Control()
    stopping.handle(protocol.Stop())  # the adapter is saved before the comparison: a stop there finishes without it
    assert stopping.comparison_skipped()


def test_a_terminal_reads_the_losses_named_and_the_comparison_prompt_by_prompt():
    from engine.heavy.events import _human

    finished = protocol.Finished("/runs/a", "/runs/a/adapter", {"train_loss": 0.7812, "last_loss": 0.04904})
    assert _human(finished) == "finished: adapter in /runs/a/adapter (average training loss 0.781 · last 0.049)"
    assert _human(protocol.CompareProgress("answers", 3, 8, 125.0, 80.0)) == (
        "comparing with the base model: 3 of 8 answers, about 2m05s left")
    assert _human(protocol.CompareProgress("loss", 1, 2)) == (
        "comparing with the base model: validation loss of the fine-tune")
