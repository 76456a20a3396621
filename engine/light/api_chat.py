"""Chat with any OpenAI-compatible endpoint (OpenAI itself, or a llama.cpp, Ollama or vLLM server) through the official
``openai`` client: the API model beside the fine-tune and the base model.

The key lives in the keyring (engine/light/secret_store.py) under the endpoint's base URL, never in a config, event
or log; ``$LLAMADESK_API_KEY`` serves scripts, and only for the host ``$LLAMADESK_API_KEY_HOST`` names. Every failure
becomes one ``ApiError`` that says what happened and what to do: a refused key, an unreachable server, a timeout, a
rate limit, a connection that closed mid-reply (with the text received so far). No torch: the window calls it on a
worker thread, and ``Cancel`` ends a reply from another thread at once.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from engine.light import prices, secret_store
from engine.light.errors import UserError

KEY_ENV = "LLAMADESK_API_KEY"  # a key for the command line and scripts, when none is stored for the endpoint, …
KEY_HOST_ENV = "LLAMADESK_API_KEY_HOST"  # … sent only to the host(s) named here: a key goes where its owner said
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0  # at most this long to open the connection (the timeout above is for the answer)


class ApiError(UserError):
    """kind: auth, unreachable, timeout, rate_limit, not_found, bad_request, server, dropped (the connection closed
    mid-reply), cancelled. ``partial``: the reply's text received before a failure mid-reply ("" before the first
    piece)."""

    def __init__(self, message: str, *, partial: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.partial = partial


def env_key(host: str) -> str | None:
    """``$LLAMADESK_API_KEY`` when ``$LLAMADESK_API_KEY_HOST`` names ``host`` (comma-separated for several; the host
    alone, as in the URL, any case), else None: a key in the environment never goes to a host its owner did not name."""
    key = os.environ.get(KEY_ENV, "").strip()
    named = {_host_name(name) for name in os.environ.get(KEY_HOST_ENV, "").split(",") if name.strip()}
    return key if key and _host_name(host) in named else None


def _host_name(text: str) -> str:
    return text.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1
    model: str
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def key_name(self) -> str:
        return "api-key:" + self.base_url.rstrip("/")

    @property
    def host(self) -> str:
        return urlparse(self.base_url).hostname or self.base_url

    def is_local(self) -> bool:
        """Whether requests stay on this machine (a loopback address). Anything else, a LAN server included, is a
        conversation leaving the machine, and the window says so before the first request."""
        host = urlparse(self.base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def key(self) -> str | None:
        """The key stored for this base URL, else the environment's key if it names this host, else None."""
        return secret_store.get(self.key_name) or env_key(self.host)

    def problem(self) -> str | None:
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return f"'{self.base_url}' is not an http(s) address; give the API's base URL, e.g. https://api.openai.com/v1"
        if not self.model.strip():
            return "no model name: give the endpoint's model, e.g. gpt-4o-mini"
        return None


def store_key(endpoint: Endpoint, key: str) -> str:
    """Keep the endpoint's key in the keyring; returns "keyring" or the fallback file's path."""
    return secret_store.put(endpoint.key_name, key)


@dataclass
class Reply:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    first_token_s: float | None  # latency: from the request to the first token
    elapsed_s: float
    cost_usd: float | None  # for a model in the price table
    finish_reason: str | None = None


class Cancel:
    """Ends a reply from another thread. Asked between pieces, and it also shuts the connection's socket, which wakes a
    read that waits on a silent server: a stopped reply or a closing window never waits for the server's next byte.
    (Opening the connection itself cannot be interrupted; it takes at most ``CONNECT_TIMEOUT_S``.)"""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self.is_set()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _cut(sock)

    def watch(self, request) -> None:
        """An httpx request hook: follows the request's connection (httpcore's documented "trace" extension)."""
        request.extensions["trace"] = self._trace

    def _trace(self, event: str, info: dict) -> None:
        stream = info.get("return_value") if event.endswith(".complete") else None
        sock = stream.get_extra_info("socket") if hasattr(stream, "get_extra_info") else None
        if isinstance(sock, socket.socket):  # the TCP connection, then its TLS layer
            with self._lock:
                self._sockets.append(sock)
            if self.is_set():
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already, or not connected
        pass


def chat(endpoint: Endpoint, messages: list[dict], *, temperature: float = 0.7, max_tokens: int = 512,
         on_token=None, cancel: Cancel | None = None) -> Reply:
    """One streamed reply. ``on_token(text)`` gets each piece. After ``cancel.cancel()`` it returns at once with the
    text so far and finish_reason "cancelled". A failure after the reply began keeps its text in ``ApiError.partial``;
    a connection closed mid-reply is ``kind="dropped"``."""
    problem = endpoint.problem()
    if problem:
        raise ApiError(problem, kind="bad_request")
    import httpx2  # the openai client's HTTP library
    import openai

    cancel = cancel or Cancel()
    key = endpoint.key()
    client = openai.OpenAI(base_url=endpoint.base_url, api_key=key or "no-key", max_retries=0,  # a retry is the
                           timeout=openai.Timeout(endpoint.timeout_s,  # user's choice: the message says when
                                                  connect=min(endpoint.timeout_s, CONNECT_TIMEOUT_S)),
                           http_client=openai.DefaultHttpx2Client(event_hooks={"request": [cancel.watch]}))
    started = time.monotonic()
    first = None
    parts: list[str] = []
    usage, finish = None, None
    streaming = False  # the reply began: the server answered 200 and its stream is open
    try:
        with client:
            if cancel.is_set():
                raise _Cancelled
            stream = client.chat.completions.create(model=endpoint.model, messages=messages,
                                                    temperature=temperature, max_tokens=max_tokens, stream=True,
                                                    stream_options={"include_usage": True})
            streaming = True
            with stream:
                for chunk in stream:
                    if cancel.is_set():
                        raise _Cancelled
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices or ():
                        piece = choice.delta.content if choice.delta else None
                        if piece:
                            first = first if first is not None else time.monotonic() - started
                            parts.append(piece)
                            if on_token is not None:
                                on_token(piece)
                        finish = choice.finish_reason or finish
    except _Cancelled:
        finish = "cancelled"
    except (openai.APIError, httpx2.TransportError) as exc:  # the client wraps most transport errors, not all
        if cancel.is_set():  # the connection this end cut
            finish = "cancelled"
        elif streaming:
            raise _mid_reply(exc, endpoint, key, "".join(parts)) from None
        else:
            raise explain(exc, endpoint, key) from None
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    completion_tokens = getattr(usage, "completion_tokens", None)
    return Reply("".join(parts), prompt_tokens, completion_tokens, first, time.monotonic() - started,
                 prices.reply_cost(endpoint.model, prompt_tokens, completion_tokens), finish)


class _Cancelled(Exception):
    pass


def _mid_reply(exc: Exception, endpoint: Endpoint, key: str | None, partial: str) -> ApiError:
    """A failure after the reply began: the text so far is kept. The openai client reports a connection that closed
    or stalled while streaming as a connection error or a timeout, like one that never opened."""
    import httpx2
    import openai

    where = endpoint.host
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        error = ApiError(f"{where} stopped sending mid-reply (nothing for {endpoint.timeout_s:g} s); the part "
                         "received is kept", kind="timeout", hint="send the message again for the whole reply")
    elif isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
        error = ApiError(f"the connection to {where} closed mid-reply; the part received is kept", kind="dropped",
                         hint="send the message again for the whole reply")
    else:  # an error the server sent inside the stream
        error = explain(exc, endpoint, key)
    error.partial = partial
    return error


def explain(exc: Exception, endpoint: Endpoint, key: str | None = None) -> ApiError:
    """An openai error as one message with what to do; the key never appears in it."""
    import httpx2  # the openai client's HTTP library
    import openai

    where = endpoint.host
    detail = secret_store.redact(_detail(exc), key)
    if isinstance(exc, openai.APITimeoutError) and isinstance(exc.__cause__, httpx2.ConnectTimeout):
        return ApiError(f"could not reach {endpoint.base_url} (no connection within "
                        f"{min(endpoint.timeout_s, CONNECT_TIMEOUT_S):g} s)", kind="unreachable",
                        hint="check the address, the network, and that the server is running")
    if isinstance(exc, openai.APITimeoutError):
        return ApiError(f"{where} did not answer within {endpoint.timeout_s:g} s", kind="timeout",
                        hint="try again, ask for a shorter reply, or raise the timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ApiError(f"could not reach {endpoint.base_url} ({detail or 'connection failed'})", kind="unreachable",
                        hint="check the address and that the server is running (a local server: is it started?)")
    if isinstance(exc, openai.AuthenticationError):
        unnamed = key is None and os.environ.get(KEY_ENV, "").strip()
        return ApiError(f"{where} refused the API key (401){': ' + detail if detail else ''}", kind="auth",
                        hint=(f"${KEY_ENV} goes only to the hosts named in ${KEY_HOST_ENV}: add {where} there" if
                              unnamed else "enter the key again (it is kept in the system keyring)"))
    if isinstance(exc, openai.PermissionDeniedError):
        return ApiError(f"{where} refused the request (403){': ' + detail if detail else ''}", kind="auth",
                        hint="check that this key may use the model")
    if isinstance(exc, openai.RateLimitError):
        wait = _retry_after(exc)
        return ApiError(f"{where} is rate limiting requests (429){': ' + detail if detail else ''}",
                        kind="rate_limit", hint=(f"wait {wait} s and send again" if wait else
                                                 "wait a moment and send again, or check the account's quota"))
    if isinstance(exc, openai.NotFoundError):
        return ApiError(f"{where} has no model '{endpoint.model}' or no chat API at {endpoint.base_url} (404)",
                        kind="not_found", hint="check the model name and the base URL (it usually ends in /v1)")
    if isinstance(exc, openai.APIStatusError):
        kind = "server" if exc.status_code >= 500 else "bad_request"
        return ApiError(f"{where} answered {exc.status_code}{': ' + detail if detail else ''}", kind=kind,
                        hint="try again later" if kind == "server" else "check the model name and the settings")
    return ApiError(f"{where}: {detail or type(exc).__name__}", kind="server")


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:300]
    cause = exc.__cause__ or exc.__context__
    return str(cause or getattr(exc, "message", "") or "")[:300]


def _retry_after(exc) -> str | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    return value if value and value.replace(".", "", 1).isdigit() else None


def endpoint_file():
    from engine.light import paths

    return paths.home() / "api-endpoint.json"


def saved_endpoint() -> Endpoint | None:
    """The endpoint last set up in the Chat page (its address and model; the key is in the keyring)."""
    import json

    try:
        data = json.loads(endpoint_file().read_text(encoding="utf-8"))
        return Endpoint(str(data["base_url"]), str(data["model"]), float(data.get("timeout_s", DEFAULT_TIMEOUT_S)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_endpoint(endpoint: Endpoint) -> None:
    import json

    endpoint_file().parent.mkdir(parents=True, exist_ok=True)
    endpoint_file().write_text(json.dumps({"base_url": endpoint.base_url, "model": endpoint.model,
                                           "timeout_s": endpoint.timeout_s}), encoding="utf-8")
