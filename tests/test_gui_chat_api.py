"""The Chat page's third column: the same conversation sent to an OpenAI-compatible model (a real llama.cpp server
on the loopback, or responders for the errors it does not make), the privacy question before anything leaves this
computer, and the other columns carrying on when the API fails, a reply cut mid-stream included."""

from __future__ import annotations

import pytest

from engine.light import api_chat
from engine.light.api_chat import Endpoint
from engine.light.api_privacy import Consent
from tests.api_responders import RateLimited, Responder, streamed
from tests.llama_cpp import LlamaCpp
from tests.test_gui_chat_page import load, make_page, make_run  # noqa: F401 - make_page is a fixture


def say(qtbot, page, text):
    """Send, and wait until every column has answered (a real server on a busy 2-core machine takes its time)."""
    page.input_edit.setPlainText(text)
    page.send_button.click()
    qtbot.waitUntil(lambda: page.send_button.isEnabled() and not page.stop_button.isEnabled(), timeout=90_000)


@pytest.fixture(scope="module")
def server(demo_gguf):
    return LlamaCpp(demo_gguf)


@pytest.fixture
def page(home, make_page):  # noqa: F811 - the fixture imported above
    make_run(home, "alpha")
    page = make_page()
    page.asked = []
    page.api.consent = Consent(lambda endpoint, question: page.asked.append(endpoint.host) or page.answer)
    page.answer = True
    return page


def _use(page, endpoint: Endpoint, key: str | None = None):
    if key:
        api_chat.store_key(endpoint, key)
    page.api.set_endpoint(endpoint)
    page.api_box.setChecked(True)


def test_a_local_server_answers_beside_the_fine_tune_without_asking(qtbot, page, server):
    load(qtbot, page)
    _use(page, Endpoint(server.base_url, "smollm2"), server.key)
    assert page.api_pane.isVisibleTo(page) and "this computer" in page.api_pane.title.text()
    page.sampling["temperature"].setValue(0.0)
    page.sampling["max_new_tokens"].setValue(12)
    say(qtbot, page, "What is the capital of France? Answer in one word.")
    qtbot.waitUntil(lambda: not page.api.is_busy() and page.send_button.isEnabled(), timeout=60_000)
    text = page.api_pane.transcript.toPlainText()
    assert "Paris" in text and "You said" in page.left_pane.transcript.toPlainText()
    reply = page.api_pane.transcript.messages()[-1]
    assert "first token after" in reply.footer.text() and "tokens (" in reply.footer.text()
    assert page.asked == []  # a loopback server is never asked about
    history = page.api_pane.transcript.history()
    assert [m["role"] for m in history] == ["user", "assistant"]  # the answer joins the API conversation


def test_nothing_leaves_this_computer_until_the_user_agrees_and_a_failure_stays_in_its_column(qtbot, page):
    load(qtbot, page)
    _use(page, Endpoint("https://api.llamadesk-test.invalid/v1", "gpt-4o-mini", timeout_s=5))
    assert page.api_pane.title.text() == "API: gpt-4o-mini (api.llamadesk-test.invalid)"
    assert "go to api.llamadesk-test.invalid" in page.api_pane.transcript.empty_label.text()  # the empty pane says
    page.answer = False
    say(qtbot, page, "first")
    assert page.asked == ["api.llamadesk-test.invalid"]
    assert "not sent: you chose not to send to api.llamadesk-test.invalid" in page.api_pane.transcript.toPlainText()
    assert "You said: first" in page.left_pane.transcript.toPlainText()  # the fine-tune answered

    page.answer = True
    say(qtbot, page, "second")
    qtbot.waitUntil(lambda: not page.api.is_busy(), timeout=30_000)
    qtbot.waitUntil(lambda: "could not reach" in page.api_pane.transcript.toPlainText(), timeout=5_000)
    assert "You said: second" in page.left_pane.transcript.toPlainText()
    say(qtbot, page, "third")  # asked once a session
    qtbot.waitUntil(lambda: not page.api.is_busy(), timeout=30_000)
    assert page.asked == ["api.llamadesk-test.invalid"] * 2


def test_a_rate_limit_says_when_to_try_again(qtbot, page):
    limited = Responder(RateLimited)
    try:
        load(qtbot, page)
        _use(page, Endpoint(limited.base_url, "gpt-4o-mini"))
        say(qtbot, page, "hello")
        qtbot.waitUntil(lambda: "rate limiting" in page.api_pane.transcript.toPlainText(), timeout=30_000)
        assert "wait 7 s and send again" in page.api_pane.transcript.toPlainText()
        assert page.send_button.isEnabled()  # the window goes on
    finally:
        limited.close()


def test_a_reply_cut_mid_stream_keeps_its_part_with_the_message_beneath(qtbot, page):
    responder = Responder(streamed(pieces=("The capital", " of France", " is", " Paris."), drop_at={1: 2}))
    try:
        load(qtbot, page)
        _use(page, Endpoint(responder.base_url, "m"))
        say(qtbot, page, "capital of France?")
        qtbot.waitUntil(lambda: "closed mid-reply" in page.api_pane.transcript.toPlainText(), timeout=30_000)
    finally:
        responder.close()
    lines = page.api_pane.transcript.toPlainText().splitlines()
    assert lines[-2:] == ["API model: The capital of France  (error)",
                          "(the connection to 127.0.0.1 closed mid-reply; the part received is kept — send the "
                          "message again for the whole reply)"]
    assert "You said: capital of France?" in page.left_pane.transcript.toPlainText()  # the fine-tune answered
    qtbot.waitUntil(page.send_button.isEnabled, timeout=5_000)  # the window goes on


def test_the_api_model_dialog_keeps_the_key_in_the_keyring(qtbot, home):
    from gui.api_model_dialog import ApiModelDialog

    dialog = ApiModelDialog(None)
    qtbot.addWidget(dialog)
    assert dialog.url.text() == "https://api.openai.com/v1" and "leave this computer" in dialog.where.text()
    dialog.preset.setCurrentIndex(2)  # Ollama on this computer
    assert dialog.url.text() == "http://localhost:11434/v1" and "stay here" in dialog.where.text()
    dialog.url.setText("ftp://nope")
    dialog.accept()
    assert "not an http" in dialog.problem.text() and dialog.endpoint is None
    dialog.url.setText("https://api.openai.com/v1")
    dialog.model.setText("gpt-4o")
    dialog.key.setText("sk-test-1234")
    dialog.accept()
    assert dialog.endpoint == Endpoint("https://api.openai.com/v1", "gpt-4o", 60.0)
    assert dialog.endpoint.key() == "sk-test-1234"
    assert "sk-test-1234" not in "".join(p.read_text() for p in home.rglob("*") if p.is_file())


def test_the_page_is_free_again_when_the_reply_ends_even_if_its_thread_lingers(qtbot, page, monkeypatch):
    """The worker thread is still alive when its last signal is handled; the page must not wait for it to exit."""
    import time

    from gui import api_worker

    def chat(endpoint, messages, on_token=None, **_):  # an answer at once: the timing is what is tested
        on_token("Paris.")
        return api_chat.Reply("Paris.", 10, 2, 0.01, 0.02, None, "stop")

    class Lingering(api_worker._Task):
        def _end(self):  # after the reply's last signal
            time.sleep(3)
            super()._end()

    monkeypatch.setattr(api_chat, "chat", chat)
    monkeypatch.setattr(api_worker, "_Task", Lingering)
    load(qtbot, page)
    _use(page, Endpoint("http://127.0.0.1:9/v1", "m"))
    page.input_edit.setPlainText("capital of France?")
    page.send_button.click()
    qtbot.waitUntil(lambda: "Paris." in page.api_pane.transcript.toPlainText(), timeout=10_000)
    qtbot.waitUntil(page.send_button.isEnabled, timeout=2_000)  # before the thread's 3 s are over
    assert page.api.worker.running() and not page.api.is_busy()
