"""The training engine end to end on a tiny random-weight LLaMA: events, run folder, stop, pause, resume."""

from __future__ import annotations

import json

import psutil
import pytest
import yaml

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.light import config as run_config
from engine.light import protocol, run_folder
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess, of_type, state


def _settings(tiny_model, dataset, **train_overrides):
    train_overrides.setdefault("compare_base", "false")  # tests/test_before_after.py covers the comparison
    return ["--set", f"model={tiny_model}", "--set", f"dataset={dataset}", "--set", "quantization=none",
            "--set", "data.validation_share=0.1"] + [
        part for key, value in train_overrides.items() for part in ("--set", f"train.{key}={value}")]


def test_training_run_events_and_run_folder(home, tiny_model, small_dataset):
    engine = EngineProcess(home, "train", "--json", *_settings(tiny_model, small_dataset, max_steps=4,
                                                                 save_steps=2, micro_batch=4),
                           "--set", "run_name=first")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    messages = engine.messages
    assert isinstance(messages[0], protocol.Hello) and messages[0].protocol == protocol.PROTOCOL_VERSION
    states = [m.state for m in messages if isinstance(m, protocol.State)]
    assert states == ["loading_model", "preparing_data", "training", "saving", "finished"]
    steps = [m.step for m in messages if isinstance(m, protocol.Progress)]
    assert steps == [1, 2, 3, 4]
    progress = [m for m in messages if isinstance(m, protocol.Progress)][-1]
    assert progress.total_steps == 4 and progress.loss > 0 and progress.tokens_per_s > 0 and progress.eta_s == 0
    assert [m.step for m in messages if isinstance(m, protocol.CheckpointSaved)] == [2, 4]
    assert any(isinstance(m, protocol.Eval) for m in messages)
    finished = next(m for m in messages if isinstance(m, protocol.Finished))

    run_dir = home / "runs" / "first"
    assert finished.run_dir == str(run_dir)
    for name in ("config.yaml", "events.jsonl", "metrics.jsonl", "engine.log"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "lock").exists()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["max_steps"] == 4
    # stdout carried protocol lines only, and events.jsonl holds the same events after the handshake.
    stdout = [json.loads(line) for line in engine.stdout_lines]
    events = run_folder.read_jsonl(run_dir / "events.jsonl")
    assert stdout[1:] == events
    metrics = [m for m in run_folder.read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert [step for step, _ in RunFolder(run_dir).checkpoints()] == [2, 4]
    checkpoint = run_dir / "checkpoints" / "step-4"
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json",
                 "llamadesk.json"):
        assert (checkpoint / name).is_file(), name
    assert json.loads((checkpoint / "llamadesk.json").read_text())["config"]["model"] == str(tiny_model)
    adapter = run_dir / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md",
                 "llamadesk.json"):
        assert (adapter / name).is_file(), name
    assert "train_loss" in json.loads((adapter / "llamadesk.json").read_text())["metrics"]


def test_qlora_path_runs_on_cpu(home, tiny_model, small_dataset):
    engine = EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set",
                           f"dataset={small_dataset}", "--set", "train.max_steps=2", "--set", "run_name=q")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    assert any(isinstance(m, protocol.Finished) for m in engine.messages)
    adapter_config = json.loads((home / "runs" / "q" / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16
    assert "quantization: nf4" in (home / "runs" / "q" / "config.yaml").read_text()


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_bad_config_and_dataset_give_clear_errors(home, tiny_model, tmp_path):
    bad = EngineProcess(home, "train", "--json", "--set", "dataset=x.json", "--set", "lora.rank=0")
    assert bad.finish() == 1
    assert b"lora.rank" in bad.stderr and b"Traceback" not in bad.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"instruction": "", "output": "x"}\n')
    engine = EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={empty}")
    assert engine.finish() == 1
    error = next(m for m in engine.messages if isinstance(m, protocol.Error))
    assert error.kind == "dataset" and "no usable rows" in error.message and error.hint
    assert isinstance(engine.messages[-1], protocol.State) and engine.messages[-1].state == "failed"


@pytest.mark.slow
def test_stop_saves_a_checkpoint_and_resume_finishes(home, tiny_model, small_dataset):
    engine = EngineProcess(home, "train", "--json", *_settings(tiny_model, small_dataset, max_steps=30,
                                                                 save_steps=100), "--set", "run_name=stopme")
    engine.wait_for(of_type(protocol.Progress))
    engine.send(protocol.Stop())
    assert engine.finish() == 0
    stopped_at = next(m for m in engine.messages if isinstance(m, protocol.CheckpointSaved)).step
    assert engine.messages[-1] == protocol.State("stopped", engine.messages[-1].detail)
    run_dir = home / "runs" / "stopme"
    assert RunFolder(run_dir).latest_checkpoint()[0] == stopped_at < 30
    assert not (run_dir / "adapter").exists()

    resumed = EngineProcess(home, "train", "--json", "--resume", "stopme")
    assert resumed.finish() == 0, resumed.stderr.decode()[-2000:]
    steps = [m.step for m in resumed.messages if isinstance(m, protocol.Progress)]
    assert steps[0] == stopped_at + 1 and steps[-1] == 30
    logged = [m["step"] for m in run_folder.read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]
    assert logged == list(range(1, 31)), "metrics continue without duplicated or missing steps"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_pause_saves_a_checkpoint_ends_the_engine_and_resume_goes_on(home, tiny_model, small_dataset):
    """Pause frees everything the engine held: it saves a checkpoint and its process ends. Resume is a new engine from
    that checkpoint; the steps, the metrics and the run's clock go on without a gap."""
    engine = EngineProcess(home, "train", "--json", *_settings(tiny_model, small_dataset, max_steps=40, save_steps=100),
                           "--set", "run_name=paused")
    engine.wait_for(of_type(protocol.Progress))
    held = psutil.Process(engine.proc.pid).memory_info().rss
    engine.send(protocol.Pause())
    paused = engine.wait_for(state("paused"))
    assert engine.finish() == 0 and not psutil.pid_exists(engine.proc.pid), "nothing of the engine stays in memory"
    print(f"engine memory while training: {held / 2**20:.0f} MiB; while paused: 0 (no process)")
    folder = RunFolder(home / "runs" / "paused")
    at = folder.latest_checkpoint()[0]
    assert f"at step {at};" in paused.detail and 0 < at < 40
    summary = folder.summary()
    assert summary.status == "paused" and summary.resumable and folder.lock_holder() is None
    clock_at_pause = [m["elapsed_s"] for m in folder.metrics() if "elapsed_s" in m][-1]

    resumed = EngineProcess(home, "train", "--json", "--resume", str(folder.path))
    assert resumed.finish() == 0, resumed.stderr.decode()[-2000:]
    first = next(m for m in resumed.messages if isinstance(m, protocol.Progress))
    assert first.step == at + 1 and first.elapsed_s >= clock_at_pause
    steps = [m["step"] for m in folder.metrics() if "loss" in m]
    assert steps == list(range(1, 41))
    clock = [m["elapsed_s"] for m in folder.metrics() if "loss" in m]
    assert clock == sorted(clock), "the run's clock goes on across the pause"
    assert folder.summary().status == "finished"


class _StopAt(Emitter):
    """Asks the run to stop once step ``n`` is logged: the stop lands at the next step boundary."""

    def __init__(self, control: Control, n: int):
        super().__init__(None)
        self.control, self.n = control, n

    def emit(self, msg):
        super().emit(msg)
        if isinstance(msg, protocol.Progress) and msg.step == self.n:
            self.control.stop.set()


def _losses(run_dir):
    return {m["step"]: m["loss"] for m in run_folder.read_jsonl(run_dir / "metrics.jsonl") if "loss" in m}


def test_resume_is_equivalent_to_training_straight(home, tiny_model, small_dataset):
    def make(name):
        return run_config.from_mapping({
            "model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none", "run_name": name,
            "data": {"validation_share": 0.0},
            "train": {"max_steps": 10, "save_steps": 100, "micro_batch": 2, "learning_rate": 1e-3},
        })

    assert train.run(make("straight"), emitter=Emitter(None), control=Control()) == 0
    control = Control()
    assert train.run(make("split"), emitter=_StopAt(control, 4), control=control) == 0
    split_dir = home / "runs" / "split"
    assert RunFolder(split_dir).latest_checkpoint()[0] == 5
    assert train.run(None, emitter=Emitter(None), control=Control(), resume_dir=split_dir) == 0

    straight, split = _losses(home / "runs" / "straight"), _losses(split_dir)
    assert sorted(split) == list(range(1, 11)) == sorted(straight)
    for step in range(1, 11):
        assert split[step] == pytest.approx(straight[step], rel=1e-4), step


def test_the_run_config_reaches_the_trainer_arguments(home):
    from engine.heavy.train_setup import training_arguments

    config = run_config.RunConfig(dataset="x").with_values({
        "train.learning_rate": 3e-4, "train.weight_decay": 0.01, "train.max_grad_norm": 0.5,
        "train.scheduler": "linear", "train.micro_batch": 3, "train.grad_accum": 5, "train.save_steps": 7,
        "train.seed": 9, "train.max_steps": 11, "train.logging_steps": 2, "train.eval_steps": 4})
    args = training_arguments(config, RunFolder(home / "runs" / "r"), "cpu", None, has_eval=True)
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm) == (3e-4, 0.01, 0.5)
    assert args.lr_scheduler_type.value == "linear" and args.optim.value == "adamw_torch"
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (3, 5)
    assert (args.save_steps, args.seed, args.max_steps, args.logging_steps, args.eval_steps) == (7, 9, 11, 2, 4)
    assert args.output_dir == str(home / "runs" / "r" / "checkpoints") and args.use_cpu


@pytest.mark.slow
def test_the_last_step_is_always_reported(home, tiny_model, small_dataset):
    engine = EngineProcess(home, "train", "--json", *_settings(tiny_model, small_dataset, max_steps=7, logging_steps=5),
                           "--set", "run_name=last")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    assert [m.step for m in engine.messages if isinstance(m, protocol.Progress)] == [1, 5, 7]
    summary = RunFolder(home / "runs" / "last").summary()
    assert (summary.steps, summary.total_steps) == (7, 7) and summary.final_loss is not None
