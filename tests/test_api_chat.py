"""The API model: the official openai client against a real OpenAI-compatible server (llama.cpp's, from xllamacpp,
serving the demo model's GGUF on the loopback), its errors in words, the key in the keyring, the price table."""

from __future__ import annotations

import socket

import pytest

from engine.light import api_chat, prices, secret_store
from engine.light.api_chat import ApiError, Endpoint
from tests.api_responders import RateLimited, Responder, Silent
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
