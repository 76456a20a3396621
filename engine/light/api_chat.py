"""Chat with any OpenAI-compatible endpoint (OpenAI itself, or a llama.cpp, Ollama or vLLM server) through the official
``openai`` client: the API model beside the fine-tune and the base model.

The key lives in the keyring (engine/light/secret_store.py) under the endpoint's base URL, never in a config, event
or log. Every failure becomes one ``ApiError`` that says what happened and what to do: a refused key, an unreachable
server, a timeout, a rate limit. No torch: the window calls it on a worker thread.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from engine.light import prices, secret_store
from engine.light.errors import UserError

KEY_ENV = "LLAMADESK_API_KEY"  # a key for the command line and scripts, when none is stored for the endpoint
DEFAULT_TIMEOUT_S = 60.0


class ApiError(UserError):
    """kind: auth, unreachable, timeout, rate_limit, not_found, bad_request, server, cancelled."""


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
        return secret_store.get(self.key_name) or os.environ.get(KEY_ENV) or None

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


def chat(endpoint: Endpoint, messages: list[dict], *, temperature: float = 0.7, max_tokens: int = 512,
         on_token=None, cancelled=None) -> Reply:
    """One streamed reply. ``on_token(text)`` gets each piece; ``cancelled()`` is asked between pieces."""
    problem = endpoint.problem()
    if problem:
        raise ApiError(problem, kind="bad_request")
    import openai

    key = endpoint.key()
    client = openai.OpenAI(base_url=endpoint.base_url, api_key=key or "no-key", timeout=endpoint.timeout_s,
                           max_retries=0)  # a retry is the user's choice: the message says when
    started = time.monotonic()
    first = None
    parts: list[str] = []
    usage, finish = None, None
    try:
        stream = client.chat.completions.create(model=endpoint.model, messages=messages, temperature=temperature,
                                                max_tokens=max_tokens, stream=True,
                                                stream_options={"include_usage": True})
        for chunk in stream:
            if cancelled is not None and cancelled():
                stream.close()
                finish = "cancelled"
                break
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
    except openai.APIError as exc:
        raise explain(exc, endpoint, key) from None
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    completion_tokens = getattr(usage, "completion_tokens", None)
    return Reply("".join(parts), prompt_tokens, completion_tokens, first, time.monotonic() - started,
                 prices.reply_cost(endpoint.model, prompt_tokens, completion_tokens), finish)


def explain(exc: Exception, endpoint: Endpoint, key: str | None = None) -> ApiError:
    """An openai error as one message with what to do; the key never appears in it."""
    import openai

    where = endpoint.host
    detail = secret_store.redact(_detail(exc), key)
    if isinstance(exc, openai.APITimeoutError):
        return ApiError(f"{where} did not answer within {endpoint.timeout_s:g} s", kind="timeout",
                        hint="try again, ask for a shorter reply, or raise the timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ApiError(f"could not reach {endpoint.base_url} ({detail or 'connection failed'})", kind="unreachable",
                        hint="check the address and that the server is running (a local server: is it started?)")
    if isinstance(exc, openai.AuthenticationError):
        return ApiError(f"{where} refused the API key (401){': ' + detail if detail else ''}", kind="auth",
                        hint="enter the key again (it is kept in the system keyring)")
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
