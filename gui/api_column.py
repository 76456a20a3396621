"""The Chat page's API column: sends the conversation to an OpenAI-compatible endpoint on a worker thread
(gui/api_worker.py), so the window and the other columns carry on while it answers or fails. Before the first
request of a session to an endpoint off this machine, it asks (engine/light/api_privacy.py); a local server is not
asked about."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.light import api_chat, api_privacy
from engine.light.api_chat import Endpoint
from gui.api_worker import ApiWorker


class ApiColumn(QObject):
    """Signals: sig_started(); sig_token(str); sig_finished(object: api_chat.Reply); sig_failed(str: message and
    hint; the pieces received before it stay where sig_token put them)."""

    sig_started = Signal()
    sig_token = Signal(str)
    sig_finished = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, ask: api_privacy.Ask | None = None):
        super().__init__(parent)
        self.endpoint: Endpoint | None = api_chat.saved_endpoint()
        self.consent = api_privacy.Consent(ask)  # ask(endpoint, question) -> bool: the page supplies a dialog
        self.worker = ApiWorker(self)  # busy until the reply's end reaches the window's thread
        self.worker.sig_piece.connect(self.sig_token)
        self.worker.sig_done.connect(self.sig_finished)
        self.worker.sig_failed.connect(self.sig_failed)

    def configured(self) -> bool:
        return self.endpoint is not None and self.endpoint.problem() is None

    def is_busy(self) -> bool:
        return self.worker.is_busy()

    def set_endpoint(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        api_chat.save_endpoint(endpoint)

    def allowed(self) -> bool:
        """Whether a request may go to the endpoint now: it is local, or the user agreed this session."""
        return self.endpoint is not None and self.consent.allows(self.endpoint)

    def send(self, messages: list[dict], *, temperature: float, max_tokens: int) -> bool:
        """Start one reply to ``messages``; False when not configured, busy, or the user declined."""
        if not self.configured() or self.is_busy() or not self.allowed():
            return False
        endpoint = self.endpoint

        def call(cancel, emit):
            return api_chat.chat(endpoint, messages, temperature=temperature, max_tokens=max_tokens, on_token=emit,
                                 cancel=cancel)

        self.sig_started.emit()
        return self.worker.start(call, failure="the API request failed")

    def stop(self) -> None:
        """End the reply under way; the text so far arrives as a reply stopped early."""
        self.worker.cancel()

    def shutdown(self) -> bool:
        """Stop, and wait (bounded) for the worker thread; nothing more is signalled. True when it has ended."""
        return self.worker.shutdown()


def reply_footer(reply: api_chat.Reply) -> str:
    """Latency, tokens, speed and cost of an API reply, as the pane's footer shows them."""
    parts = []
    if reply.first_token_s is not None:
        parts.append(f"first token after {reply.first_token_s:.2f} s")
    if reply.completion_tokens:
        speed = reply.completion_tokens / max(reply.elapsed_s - (reply.first_token_s or 0.0), 1e-6)
        parts.append(f"{reply.completion_tokens} tokens ({reply.prompt_tokens or '?'} in) · {speed:.1f} tok/s")
    if reply.cost_usd is not None:
        parts.append(f"${reply.cost_usd:.5f}")
    return " · ".join(parts)
