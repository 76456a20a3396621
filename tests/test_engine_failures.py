"""Failures during training, injected for real at a chosen step: a NaN loss, CUDA out-of-memory; and no open doors."""

from __future__ import annotations

import psutil
import pytest
import torch
from transformers import TrainerCallback

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.light import config as run_config
from engine.light import protocol
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess, of_type, state


class Recorder(Emitter):
    def __init__(self):
        super().__init__(None)
        self.messages: list = []

    def emit(self, msg):
        super().emit(msg)
        self.messages.append(msg)

    def error(self) -> protocol.Error:
        return next(m for m in self.messages if isinstance(m, protocol.Error))


class AtStep(TrainerCallback):
    """Installs ``install(model)`` just before optimizer step ``step`` (1-based) runs."""

    def __init__(self, step: int, install):
        self.step, self.install = step, install

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            self.install(model)


def _config(tiny_model, small_dataset, name, **train):
    return run_config.from_mapping({
        "model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none", "run_name": name,
        "data": {"validation_share": 0.0}, "train": {"max_steps": 6, "save_steps": 1, **train}})


def _nan_loss(model):
    def poison(module, inputs, output):  # the decoder's output, which either loss (standard or chunked) starts from
        output.last_hidden_state = output.last_hidden_state * float("nan")
        return output

    model.get_base_model().model.register_forward_hook(poison)


def _out_of_memory(model):
    def fail(module, inputs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.register_forward_pre_hook(fail)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(home, tiny_model, small_dataset):
    recorder = Recorder()
    code = train.run(_config(tiny_model, small_dataset, "nan"), emitter=recorder, control=Control(),
                     callbacks=(AtStep(3, _nan_loss),))
    assert code == 1
    error = recorder.error()
    assert error.kind == "diverged" and "step 3" in error.message and "step 2" in error.hint
    assert [step for step, _ in RunFolder(home / "runs" / "nan").checkpoints()] == [1, 2]
    assert not (home / "runs" / "nan" / "adapter").exists()
    assert recorder.messages[-1] == protocol.State("failed")


def test_a_nan_step_that_is_not_logged_is_never_saved(home, tiny_model, small_dataset):
    """Logging every 5 steps and saving every 2: step 3 goes NaN unlogged, and step 4 must not be saved."""
    recorder = Recorder()
    config = _config(tiny_model, small_dataset, "quiet-nan", logging_steps=5, save_steps=2)
    assert train.run(config, emitter=recorder, control=Control(), callbacks=(AtStep(3, _nan_loss),)) == 1
    error = recorder.error()
    assert error.kind == "diverged" and "step 3" in error.message and "step 2" in error.hint
    assert [step for step, _ in RunFolder(home / "runs" / "quiet-nan").checkpoints()] == [2]


@pytest.mark.parametrize("step, phase", [(1, "at the first step"), (3, "at step 3")])
def test_out_of_memory_is_classified_with_the_estimate_and_a_way_out(home, tiny_model, small_dataset, step, phase):
    recorder = Recorder()
    code = train.run(_config(tiny_model, small_dataset, f"oom{step}"), emitter=recorder, control=Control(),
                     callbacks=(AtStep(step, _out_of_memory),))
    assert code == 1
    error = recorder.error()
    assert error.kind == "out_of_memory" and phase in error.message
    assert "estimated need" in error.message and "resume" in error.hint
    log = (home / "runs" / f"oom{step}" / "engine.log").read_text()
    assert "OutOfMemoryError" in log, "the traceback stays in engine.log"
    assert [s for s, _ in RunFolder(home / "runs" / f"oom{step}").checkpoints()] == list(range(1, step))


def _listening(pid: int) -> list:
    process = psutil.Process(pid)
    found = []
    for proc in [process, *process.children(recursive=True)]:
        found += [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    return found


@pytest.mark.slow
def test_no_listening_socket_during_training_and_chat(home, tiny_model, small_dataset):
    engine = EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set",
                           f"dataset={small_dataset}", "--set", "quantization=none", "--set", "train.max_steps=40",
                           "--set", "run_name=sockets")
    engine.wait_for(of_type(protocol.Progress))
    assert _listening(engine.proc.pid) == []
    engine.send(protocol.Stop())
    assert engine.finish() == 0
    chat = EngineProcess(home, "chat", "--model", str(tiny_model), "--device", "cpu")
    chat.wait_for(state("ready"))
    chat.send(protocol.Chat("1", [{"role": "user", "content": "hi"}], temperature=0.0, max_new_tokens=3))
    chat.wait_for(of_type(protocol.ChatToken))
    assert _listening(chat.proc.pid) == []
    chat.send(protocol.Shutdown())
    assert chat.finish() == 0
