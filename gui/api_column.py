"""The Chat page's API column: sends the conversation to an OpenAI-compatible endpoint on a worker thread, so the
window and the other columns carry on while it answers or fails. Before the first request of a session to an
endpoint off this machine, it asks (the privacy notice); a local server is not asked about."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from engine.light import api_chat
from engine.light.api_chat import ApiError, Endpoint


def privacy_notice(endpoint: Endpoint, what: str = "this conversation") -> str:
    return (f"{what[:1].upper() + what[1:]} will be sent to {endpoint.host} ({endpoint.base_url}), off this computer. "
            f"The provider receives the text and handles it under its own terms. Nothing is sent to an API model "
            f"unless you say so here; a server on this computer (127.0.0.1, localhost) is never asked about.\n\n"
            f"Send to {endpoint.host}?")


class ApiColumn(QObject):
    """Signals: sig_started(); sig_token(str); sig_finished(object: api_chat.Reply); sig_failed(str: message and
    hint)."""

    sig_started = Signal()
    sig_token = Signal(str)
    sig_finished = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, confirm=None):
        super().__init__(parent)
        self.endpoint: Endpoint | None = api_chat.saved_endpoint()
        self._confirm = confirm  # (endpoint) -> bool: the privacy question; the page supplies a dialog
        self._allowed: set[str] = set()  # base URLs the user agreed to send to in this session
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        # Busy from send() until the reply's end reaches this (the window's) thread: the worker thread may still be
        # alive when its last signal is handled, so its liveness cannot say.
        self._busy = False
        self.sig_finished.connect(self._done)  # connected first: runs before the page's handlers
        self.sig_failed.connect(self._done)

    def _done(self, *_) -> None:
        self._busy = False

    def configured(self) -> bool:
        return self.endpoint is not None and self.endpoint.problem() is None

    def is_busy(self) -> bool:
        return self._busy

    def set_endpoint(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        api_chat.save_endpoint(endpoint)

    def allowed(self) -> bool:
        """Whether a request may go to the endpoint now: it is local, or the user agreed this session."""
        endpoint = self.endpoint
        if endpoint is None:
            return False
        if endpoint.is_local() or endpoint.base_url in self._allowed:
            return True
        if self._confirm is not None and self._confirm(endpoint):
            self._allowed.add(endpoint.base_url)
            return True
        return False

    def send(self, messages: list[dict], *, temperature: float, max_tokens: int) -> bool:
        """Start one reply to ``messages``; False when not configured, busy, or the user declined."""
        if not self.configured() or self.is_busy() or not self.allowed():
            return False
        self._cancel.clear()
        self._busy = True
        endpoint = self.endpoint
        self._thread = threading.Thread(target=self._run, args=(endpoint, messages, temperature, max_tokens),
                                        name="api-chat", daemon=True)
        self.sig_started.emit()
        self._thread.start()
        return True

    def stop(self) -> None:
        self._cancel.set()

    def _run(self, endpoint: Endpoint, messages, temperature, max_tokens) -> None:
        try:
            reply = api_chat.chat(endpoint, messages, temperature=temperature, max_tokens=max_tokens,
                                  on_token=self.sig_token.emit, cancelled=self._cancel.is_set)
        except ApiError as exc:
            self.sig_failed.emit(exc.message + (f" — {exc.hint}" if exc.hint else ""))
            return
        except Exception as exc:  # noqa: BLE001 - the column fails alone; the window and other columns carry on
            self.sig_failed.emit(f"the API request failed: {exc}")
            return
        self.sig_finished.emit(reply)


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
