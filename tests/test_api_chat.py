"""The API model: the official openai client against a real OpenAI-compatible server (llama.cpp's, from xllamacpp,
serving the demo model's GGUF on the loopback), its errors in words, the key in the keyring and only where it was
meant to go, a reply cut mid-stream or cancelled, the batch comparison asking what the local models were asked and
keeping what it got, the price table."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from engine.light import api_chat, api_compare, prices, secret_store
from engine.light.api_chat import ApiError, Endpoint
from engine.light.run_folder import RunFolder
from tests.api_responders import RateLimited, Responder, Silent, streamed
from tests.llama_cpp import LlamaCpp

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def server(demo_gguf):
    return LlamaCpp(demo_gguf)


def test_a_reply_streams_from_a_real_server_with_its_tokens_and_latency(server):
    endpoint = Endpoint(server.base_url, "smollm2")
    api_chat.store_key(endpoint, server.key)
    pieces = []
    reply = api_chat.chat(endpoint, QUESTION, temperature=0.0, max_tokens=12, on_token=pieces.append)
    print(reply)
    assert "Paris" in reply.text and "".join(pieces) == reply.text
    assert reply.prompt_tokens > 5 and 0 < reply.completion_tokens <= 12
    assert 0 < reply.first_token_s <= reply.elapsed_s
    assert reply.cost_usd is None  # a local model has no price
    assert secret_store.get(endpoint.key_name) == server.key  # kept in the (test) keyring


def test_a_wrong_key_is_refused_in_words_without_the_key(server):
    endpoint = Endpoint(server.base_url, "smollm2")
    api_chat.store_key(endpoint, "sk-wrong-key-1234")
    with pytest.raises(ApiError) as caught:
        api_chat.chat(endpoint, QUESTION, max_tokens=4)
    assert caught.value.kind == "auth" and "refused the API key (401)" in caught.value.message
    assert "keyring" in caught.value.hint and "sk-wrong-key-1234" not in str(caught.value)


def test_an_unreachable_server_a_timeout_and_a_rate_limit_each_say_what_to_do():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ApiError) as caught:
        api_chat.chat(Endpoint(f"http://127.0.0.1:{port}/v1", "m", timeout_s=5), QUESTION)
    assert caught.value.kind == "unreachable" and f"127.0.0.1:{port}" in caught.value.message

    silent = Responder(Silent)
    try:
        with pytest.raises(ApiError) as caught:
            api_chat.chat(Endpoint(silent.base_url, "m", timeout_s=1), QUESTION)
        assert caught.value.kind == "timeout" and "did not answer within 1 s" in caught.value.message
    finally:
        silent.close()

    limited = Responder(RateLimited)
    try:
        with pytest.raises(ApiError) as caught:
            api_chat.chat(Endpoint(limited.base_url, "gpt-4o-mini"), QUESTION)
        assert caught.value.kind == "rate_limit" and "Rate limit reached" in caught.value.message
        assert caught.value.hint == "wait 7 s and send again"
    finally:
        limited.close()


def test_a_server_that_never_takes_the_connection_is_unreachable_not_silent():
    with socket.socket() as server:  # a full listen queue: the next connection is never taken
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        for client in queued:
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
        try:
            with pytest.raises(ApiError) as caught:
                api_chat.chat(Endpoint(f"http://127.0.0.1:{port}/v1", "m", timeout_s=1), QUESTION)
        finally:
            for client in queued:
                client.close()
    assert caught.value.kind == "unreachable" and "no connection within 1 s" in caught.value.message


def test_the_environments_key_goes_only_to_the_host_it_names(monkeypatch):
    handler = streamed()
    responder = Responder(handler)
    port = responder.server.server_address[1]
    numeric, named = Endpoint(f"http://127.0.0.1:{port}/v1", "m"), Endpoint(f"http://localhost:{port}/v1", "m")
    try:
        monkeypatch.setenv("LLAMADESK_API_KEY", "sk-env-5678")
        monkeypatch.delenv("LLAMADESK_API_KEY_HOST", raising=False)
        api_chat.chat(numeric, QUESTION)  # no host named: the key stays here
        monkeypatch.setenv("LLAMADESK_API_KEY_HOST", "LocalHost")
        api_chat.chat(numeric, QUESTION)  # the same server under another host name: still not sent
        api_chat.chat(named, QUESTION)
        monkeypatch.setenv("LLAMADESK_API_KEY_HOST", "api.example.test, 127.0.0.1")
        api_chat.chat(numeric, QUESTION)
        api_chat.store_key(numeric, "sk-stored-1234")  # a key stored for the base URL comes first
        api_chat.chat(numeric, QUESTION)
    finally:
        responder.close()
    assert handler.authorization == ["Bearer no-key", "Bearer no-key", "Bearer sk-env-5678", "Bearer sk-env-5678",
                                     "Bearer sk-stored-1234"]


def test_a_connection_closed_mid_reply_keeps_the_part_received():
    responder = Responder(streamed(pieces=("The capital", " of France", " is", " Paris."), drop_at={1: 2}))
    pieces = []
    try:
        with pytest.raises(ApiError) as caught:
            api_chat.chat(Endpoint(responder.base_url, "m"), QUESTION, on_token=pieces.append)
    finally:
        responder.close()
    assert caught.value.kind == "dropped"
    assert caught.value.message == "the connection to 127.0.0.1 closed mid-reply; the part received is kept"
    assert caught.value.partial == "The capital of France" == "".join(pieces)


def test_a_cancel_ends_a_reply_at_once_even_while_the_server_is_silent():
    import openai  # noqa: F401 - imported before the clock starts

    silent = Responder(Silent)  # holds each request for 30 s
    cancel = api_chat.Cancel()
    threading.Timer(0.5, cancel.cancel).start()
    started = time.monotonic()
    try:
        reply = api_chat.chat(Endpoint(silent.base_url, "m", timeout_s=20), QUESTION, cancel=cancel)
    finally:
        silent.close()
    assert reply.finish_reason == "cancelled" and reply.text == ""
    assert time.monotonic() - started < 3


def _compared_run(questions: list[str], **saved) -> RunFolder:
    """A comparison as evaluation.json holds one; ``saved`` adds fields to every answer (an earlier LlamaDesk kept
    neither the messages nor the cap)."""
    folder = RunFolder.create("compared")
    folder.write_evaluation({"answers": [{"prompt": q, "question": q, "reference": "Paris.", "before": "London",
                                          "after": "Paris", **saved} for q in questions]})
    return folder


def test_the_batch_comparison_keeps_the_answers_before_a_dropped_connection(home):
    folder = _compared_run(["First?", "Second?", "Third?"])
    handler = streamed(pieces=("Paris", "."), drop_at={3: 1})
    responder = Responder(handler)
    try:
        result = api_compare.compare(folder, Endpoint(responder.base_url, "m"), max_tokens=40)
    finally:
        responder.close()
    saved = RunFolder(folder.path).evaluation()
    assert saved == result
    assert [a.get("api") for a in saved["answers"]] == ["Paris.", "Paris.", None]  # the cut answer is left out
    assert saved["answers"][0]["rouge_l_api"] == 1.0 and saved["api"]["answered"] == 2
    assert saved["api"]["stopped"] == ("the connection to 127.0.0.1 closed mid-reply at prompt 3 of 3; the answers "
                                       "before it are kept")
    # Saved without the conversations and caps: the question alone, the caller's cap, and a note that says so.
    assert [r["messages"] for r in handler.requests] == [[{"role": "user", "content": q}]
                                                         for q in ("First?", "Second?", "Third?")]
    assert [r["max_tokens"] for r in handler.requests] == [40, 40, 40]
    assert "3 of 3 prompts went as the question alone" in saved["api"]["note"]
    assert "capped at 40 tokens" in saved["api"]["note"] and "llamadesk-engine eval" in saved["api"]["note"]


def test_the_batch_comparison_sends_the_conversation_and_cap_the_local_models_had(home):
    conversation = [{"role": "system", "content": "You are a terse geography tutor."},
                    {"role": "user", "content": "What is the capital of Italy?"},
                    {"role": "assistant", "content": "Rome."},
                    {"role": "user", "content": "And of France?"}]
    folder = _compared_run(["And of France?"], messages=conversation, max_new_tokens=21)
    handler = streamed(pieces=("Paris", "."))
    responder = Responder(handler)
    try:
        result = api_compare.compare(folder, Endpoint(responder.base_url, "m"), max_tokens=40)
    finally:
        responder.close()
    [request] = handler.requests
    assert request["messages"] == conversation and request["max_tokens"] == 21
    assert request["temperature"] == 0.0
    assert result["api"]["note"] is None and result["answers"][0]["rouge_l_api"] == 1.0


def test_bad_endpoints_are_refused_before_any_request():
    with pytest.raises(ApiError, match="not an http"):
        api_chat.chat(Endpoint("api.openai.com", "gpt-4o"), QUESTION)
    with pytest.raises(ApiError, match="no model name"):
        api_chat.chat(Endpoint("https://api.openai.com/v1", " "), QUESTION)


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True), ("http://[::1]:8000/v1", True),
    ("https://api.openai.com/v1", False), ("http://192.168.1.20:8000/v1", False),  # a LAN server: it leaves
])
def test_which_endpoints_keep_the_conversation_on_this_machine(url, local):
    assert Endpoint(url, "m").is_local() is local


def test_prices_come_from_the_dated_table_and_a_users_edits(home):
    shipped = prices.table()
    assert shipped.date and shipped.source.startswith("https://") and shipped.path == prices.shipped_file()
    mini = shipped.models["gpt-4o-mini"]
    assert prices.reply_cost("gpt-4o-mini-2024-07-18", 1000, 500) == pytest.approx(
        (1000 * mini.input + 500 * mini.output) / 1e6)
    assert prices.reply_cost("ft:gpt-4o-mini-2024-07-18:acme::abc", 1000, 500) == pytest.approx(
        (1000 * mini.tuned_input + 500 * mini.tuned_output) / 1e6)
    assert prices.reply_cost("o3", 1, 1) is None and prices.reply_cost("llama3", 1, 1) is None

    copy = prices.editable_copy()
    assert copy.parent == home and copy.read_text() == prices.shipped_file().read_text()
    copy.write_text(copy.read_text().replace("gpt-4o-mini:   {input: 0.15", "gpt-4o-mini:   {input: 1.15"))
    assert prices.table().models["gpt-4o-mini"].input == 1.15 and prices.table().path == copy
    copy.write_text("models: [oops")
    broken = prices.table()
    assert broken.path == prices.shipped_file() and str(copy) in broken.problem
