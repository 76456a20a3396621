"""The chat command: streamed replies tagged with the request id, adapter on/off, an exported GGUF answering through
llama.cpp, cancel, bad input and unusable exports survived."""

from __future__ import annotations

import pytest

from engine.heavy import train
from engine.heavy.chat import EXPORT_CONTEXT
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


@pytest.mark.slow  # over 7 s: an engine process or a real run
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


@pytest.mark.slow  # over 7 s: an engine process or a real run
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


BRIEF = "Answer in one short sentence."
BEES = [{"role": "user", "content": "My name is Ada and I keep bees."},
        {"role": "assistant", "content": "Nice to meet you, Ada!"},
        {"role": "user", "content": "What is my name?"}]


def _llama_cpp_answers(gguf, *conversations: list[dict], max_tokens: int) -> list[dict]:
    """llama.cpp's own greedy answers, in this process, with a chat request's default sampling settings: what the
    export column must show."""
    from engine.heavy.llama_cpp import LlamaCpp

    defaults = protocol.Chat("defaults", [])
    llama = LlamaCpp(gguf, context=EXPORT_CONTEXT)
    try:
        return [llama.chat(messages, max_tokens=max_tokens, temperature=0.0, top_p=defaults.top_p,
                           top_k=defaults.top_k, repetition_penalty=defaults.repetition_penalty)
                for messages in conversations]
    finally:
        llama.close()


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_an_exported_gguf_answers_the_conversation_through_llama_cpp(home, tiny_model, demo_gguf):
    engine = EngineProcess(home, "chat", "--model", str(tiny_model), "--device", "cpu")
    engine.wait_for(state("ready"))
    engine.send(protocol.LoadExport(str(demo_gguf)))
    loaded = engine.wait_for(of_type(protocol.ExportLoaded))
    assert (loaded.path, loaded.name, loaded.quantization) == (str(demo_gguf), demo_gguf.name, "Q4_1")  # its header
    engine.send(protocol.Chat("e", BEES, system=BRIEF, temperature=0.0, max_new_tokens=200, adapter="export"))
    text, done = _reply(engine, "e")
    assert done.reason == "end" and 0 < done.tokens < 200, "it stops at the end of its turn, not at the limit"
    assert "<|im_end|>" not in text and "<|im_start|>" not in text
    conversation = [{"role": "system", "content": BRIEF}, *BEES]
    [expected] = _llama_cpp_answers(demo_gguf, conversation, max_tokens=200)
    assert expected["finish_reason"] == "stop" and text == expected["text"]
    # The system prompt and the earlier turns both reach llama.cpp: without either, it starts differently.
    without_system, without_turns = _llama_cpp_answers(demo_gguf, BEES, [conversation[0], BEES[-1]], max_tokens=12)
    assert not text.startswith(without_system["text"]) and not text.startswith(without_turns["text"])
    # The model the session loaded still answers its own requests beside the export.
    engine.send(protocol.Chat("m", BEES, system=BRIEF, temperature=0.0, max_new_tokens=6, repetition_penalty=1.0))
    own, done_own = _reply(engine, "m")
    assert done_own.tokens <= 6 and not text.startswith(own)
    # A cancel stops the export's answer too, and the session answers again after it.
    engine.send(protocol.Chat("long", [{"role": "user", "content": "Tell me a very long story about the sea."}],
                              temperature=0.0, max_new_tokens=2000, adapter="export"))
    engine.wait_for(lambda m: isinstance(m, protocol.ChatToken) and m.id == "long")
    engine.send(protocol.Cancel("long"))
    cancelled = engine.wait_for(lambda m: isinstance(m, protocol.ChatDone) and m.id == "long")
    assert cancelled.reason == "cancelled" and cancelled.tokens < 2000
    engine.send(protocol.Chat("again", BEES, temperature=0.0, max_new_tokens=5, adapter="export"))
    assert _reply(engine, "again")[1].reason == "length"
    engine.send(protocol.Shutdown())
    assert engine.finish() == 0


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_an_unusable_export_is_a_clear_error_and_the_session_goes_on(home, tmp_path, tiny_model, demo_gguf):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("meeting notes, not a model", encoding="utf-8")
    cut = tmp_path / "cut.gguf"  # the header whole, most of the weights missing: only llama.cpp notices
    with open(demo_gguf, "rb") as source:
        cut.write_bytes(source.read(5_000_000))
    engine = EngineProcess(home, "chat", "--model", str(tiny_model), "--device", "cpu", "--export", str(demo_gguf))
    assert engine.wait_for(of_type(protocol.ExportLoaded)).quantization == "Q4_1"  # --export loads it first
    for path, message in ((tmp_path / "gone.gguf", f"there is no file at {tmp_path / 'gone.gguf'}"),
                          (not_gguf, "notes.gguf is not a GGUF file"), (cut, "llama.cpp cannot load cut.gguf")):
        engine.send(protocol.LoadExport(str(path)))
        error = engine.wait_for(of_type(protocol.Error))
        assert (error.kind, error.message) == ("export", message) and error.hint
        engine.wait_for(state("ready"))
    # A failed load leaves no export behind (the earlier one was unloaded first): asking it is an error, not a crash.
    engine.send(protocol.Chat("e", BEES, adapter="export"))
    error = engine.wait_for(of_type(protocol.Error))
    assert error.kind == "chat" and "no exported model is loaded" in error.message
    assert engine.wait_for(of_type(protocol.ChatDone)).reason == "error"
    engine.send(protocol.Chat("m", BEES, temperature=0.0, max_new_tokens=4))
    assert _reply(engine, "m")[1].tokens > 0
    engine.send(protocol.Shutdown())
    assert engine.finish() == 0
    assert sum(isinstance(m, protocol.ExportLoaded) for m in engine.messages) == 1


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
