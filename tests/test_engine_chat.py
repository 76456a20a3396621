"""The chat command: streamed replies tagged with the request id, adapter on/off, cancel, bad input survived."""

from __future__ import annotations

import pytest

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.light import config as run_config
from engine.light import protocol
from tests.engine_driver import EngineProcess, of_type, state


def _train(tiny_model, small_dataset, name: str, **settings):
    config = run_config.from_mapping({
        "model": str(tiny_model), "dataset": str(small_dataset), "run_name": name,
        "data": {"validation_share": 0.0}, "train": {"max_steps": 6, "learning_rate": 5e-2}, **settings})
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0


@pytest.fixture
def finished_run(home, tiny_model, small_dataset):
    _train(tiny_model, small_dataset, "tuned", quantization="none")
    return home / "runs" / "tuned"


def _reply(engine: EngineProcess, request_id: str):
    done = engine.wait_for(lambda m: isinstance(m, protocol.ChatDone) and m.id == request_id)
    start = max(i for i, m in enumerate(engine.messages) if isinstance(m, protocol.State) and m.state == "generating"
                and m.detail == request_id)
    tokens = [m for m in engine.messages[start:] if isinstance(m, protocol.ChatToken)]
    assert all(t.id == request_id for t in tokens)
    return "".join(t.text for t in tokens), done


def test_chat_streams_answers_with_and_without_the_adapter(home, finished_run):
    engine = EngineProcess(home, "chat", "--run", "tuned", "--device", "cpu")
    hello = engine.wait_for(of_type(protocol.Hello))
    assert hello.command == "chat"
    ready = engine.wait_for(state("ready")).detail
    assert ready == "adapter loaded; base weights in float32, as the run trained on them"
    question = [{"role": "user", "content": "Who keeps the lighthouse?"}]
    engine.send(protocol.Chat("a", question, temperature=0.0, max_new_tokens=6, repetition_penalty=1.0))
    text_on, done = _reply(engine, "a")
    assert done.reason in ("length", "end") and 0 < done.tokens <= 6
    engine.send(protocol.Chat("b", question, temperature=0.0, max_new_tokens=6, repetition_penalty=1.0,
                              adapter="off"))
    text_off, done_off = _reply(engine, "b")
    assert done_off.tokens > 0 and text_off != text_on, "the adapter changes what the model says"
    # Malformed input is logged and skipped; the session keeps answering.
    engine.proc.stdin.write(b"this is not json\n{\"type\": \"unknown\"}\n")
    engine.proc.stdin.flush()
    engine.send(protocol.Chat("c", question, temperature=0.0, max_new_tokens=6, repetition_penalty=1.0))
    assert _reply(engine, "c")[0] == text_on, "greedy decoding is repeatable"
    engine.send(protocol.Shutdown())
    assert engine.finish() == 0
    # "adapter off" is the base model itself: a chat engine with no adapter at all says the same.
    base = EngineProcess(home, "chat", "--model", _run_model(finished_run), "--device", "cpu")
    base.wait_for(state("ready"))
    base.send(protocol.Chat("d", question, temperature=0.0, max_new_tokens=6, repetition_penalty=1.0))
    assert _reply(base, "d")[0] == text_off
    base.send(protocol.Shutdown())
    assert base.finish() == 0


def _run_model(run_dir) -> str:
    return run_config.load(run_dir / "config.yaml").model


def test_chat_loads_the_base_as_the_run_trained_on_it(home, tiny_model, small_dataset):
    """A 4-bit run is chatted with on its 4-bit base, also on the CPU; a plain-LoRA run on the full weights."""
    from engine.heavy.generation import Generator
    from engine.light.run_folder import RunFolder

    _train(tiny_model, small_dataset, "qlora", quantization="nf4")
    engine = EngineProcess(home, "chat", "--run", "qlora", "--device", "cpu")
    assert "4-bit nf4, as the run trained on them" in engine.wait_for(state("ready")).detail
    engine.send(protocol.Shutdown())
    assert engine.finish() == 0
    folder = RunFolder(home / "runs" / "qlora")
    quantized = Generator.load(tiny_model, folder.adapter_dir, device="cpu", config=folder.load_config())
    kinds = {type(m).__name__ for m in quantized.model.modules()}
    assert "Linear4bit" in kinds
    plain = Generator.load(tiny_model, folder.adapter_dir, device="cpu",
                           config=folder.load_config({"quantization": "none"}))
    assert "Linear4bit" not in {type(m).__name__ for m in plain.model.modules()}


def test_cancel_stops_a_generation_within_a_few_tokens(home, finished_run):
    engine = EngineProcess(home, "chat", "--run", str(finished_run), "--device", "cpu")
    engine.wait_for(state("ready"))
    engine.send(protocol.Chat("long", [{"role": "user", "content": "Tell me everything."}], temperature=0.0,
                              max_new_tokens=2000, repetition_penalty=1.0))
    engine.wait_for(of_type(protocol.ChatToken))
    engine.send(protocol.Cancel("long"))
    done = engine.wait_for(of_type(protocol.ChatDone))
    assert done.id == "long" and done.reason == "cancelled" and done.tokens < 2000
    engine.proc.stdin.close()  # end of input ends the session cleanly
    assert engine.finish() == 0


def test_missing_adapter_is_a_clear_error(home, tmp_path, tiny_model):
    engine = EngineProcess(home, "chat", "--model", str(tiny_model), "--adapter", str(tmp_path))
    assert engine.finish() == 1
    error = next(m for m in engine.messages if isinstance(m, protocol.Error))
    assert "adapter_config.json" in error.message and error.hint


@pytest.mark.slow
def test_two_hundred_requests_with_cancels_keep_memory_flat(home, finished_run):
    import psutil

    engine = EngineProcess(home, "chat", "--run", str(finished_run), "--device", "cpu")
    engine.wait_for(state("ready"))
    process = psutil.Process(engine.proc.pid)
    history = [{"role": "user", "content": "Who keeps the lighthouse?"}, {"role": "assistant", "content": "Mara."},
               {"role": "user", "content": "And the harbour?"}]
    reasons, rss = [], {}
    for n in range(1, 201):
        cancel = n % 4 == 0
        request = protocol.Chat(str(n), history[: 1 + 2 * (n % 2)], temperature=0.7, max_new_tokens=400 if cancel
                                else 12, adapter="off" if n % 3 == 0 else "on")
        engine.send(request)
        if cancel:
            engine.wait_for(lambda m, i=str(n): isinstance(m, protocol.ChatToken) and m.id == i)
            engine.send(protocol.Cancel(str(n)))
        reasons.append(engine.wait_for(lambda m, i=str(n): isinstance(m, protocol.ChatDone) and m.id == i).reason)
        engine.messages.clear()  # the test's own memory; the engine's is what is measured
        if n in (20, 200):
            rss[n] = process.memory_info().rss
    assert reasons.count("cancelled") == 50 and "error" not in reasons
    drift = rss[200] / rss[20] - 1
    print(f"chat endurance: RSS {rss[20] / 2**20:.1f} MiB after 20 requests, {rss[200] / 2**20:.1f} MiB after 200 "
          f"({drift:+.1%})")
    assert abs(drift) <= 0.10
    engine.send(protocol.Shutdown())
    assert engine.finish() == 0
