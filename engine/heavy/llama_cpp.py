"""llama.cpp itself, in the engine process (the ``xllamacpp`` package): the runtime that LM Studio, Ollama and
llama.cpp's own tools run a GGUF with, used to verify an export and to chat with it.

Completions and chats are answered in-process (``Server.handle_completions`` / ``handle_chat_completions``). The
tokenizer and the chat-template renderer are only reachable over llama.cpp's HTTP API: the embedded server always
listens (``CommonParams.no_host`` is about memory buffers, not the network), so it is bound to the loopback on a
port the system picks, and every request needs a key made for this instance alone; nothing else on the machine can
use it, and nothing leaves it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import urllib.request
from pathlib import Path
from typing import Callable

log = logging.getLogger("engine.llama_cpp")
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a proxy setting must not route it away


class LlamaCppUnavailable(RuntimeError):
    pass


class LlamaCpp:
    """One GGUF file loaded by llama.cpp."""

    def __init__(self, gguf: Path, *, context: int = 4096, threads: int | None = None):
        try:
            import xllamacpp
        except ImportError as exc:  # a broken install: the package is a dependency of the engine
            raise LlamaCppUnavailable(f"llama.cpp (the xllamacpp package) cannot be loaded: {exc}") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = context
        params.n_parallel = 1
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or max(1, (os.cpu_count() or 2))
        params.warmup = False
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # any free port
        self._key = secrets.token_urlsafe(24)
        params.api_keys = [self._key]
        self.path = Path(gguf)
        self._letter: int | None = None
        self._server = xllamacpp.Server(params)

    def close(self) -> None:
        self._server = None

    # ---- in-process -----------------------------------------------------------------------------------------

    def next_token(self, prompt: list[int], *, top: int = 20) -> dict[int, float]:
        """The ``top`` most likely next tokens after ``prompt`` (token ids) and their log-probabilities, as llama.cpp
        computes them from the logits (before any sampling setting)."""
        # llama.cpp leaves out the probabilities when the chosen token ends in the middle of a UTF-8 character (a
        # byte token), so a plain letter is chosen instead, by a logit bias; the probabilities come from the logits
        # before any bias.
        found = self._complete({"prompt": prompt, "n_predict": 1, "n_probs": top, "temperature": 0, "top_k": 1,
                                "ignore_eos": True, "cache_prompt": True, "post_sampling_probs": False,
                                "logit_bias": [[self._plain_token(), 1000.0]]})
        entries = found["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        return {entry["id"]: entry["logprob"] for entry in entries}

    def _plain_token(self) -> int:
        if self._letter is None:
            self._letter = self.tokenize("a", add_special=False)[-1]
        return self._letter

    def greedy(self, prompt: list[int], count: int, *, stop_at_end: bool = False,
               logit_bias: dict[int, float] | None = None) -> dict:
        """The greedy continuation of ``prompt`` (token ids): its ids, its text and why it stopped ("stop": at an
        end-of-generation token; "length": after ``count`` tokens)."""
        body = {"prompt": prompt, "n_predict": count, "temperature": 0, "top_k": 1, "ignore_eos": not stop_at_end,
                "cache_prompt": True, "return_tokens": True, "n_probs": 1}
        if logit_bias:
            body["logit_bias"] = [[token, bias] for token, bias in logit_bias.items()]
        found = self._complete(body)
        choice = found["choices"][0]
        content = (choice.get("logprobs") or {}).get("content") or []
        return {"ids": [entry["id"] for entry in content], "text": choice["text"],
                "finish_reason": choice["finish_reason"]}

    def chat(self, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0,
             top_p: float | None = None, top_k: int | None = None, repetition_penalty: float | None = None,
             on_text: Callable[[str], None] | None = None) -> dict:
        """A chat completion with the GGUF's own template: llama.cpp renders the messages, tokenizes them and stops
        at the end-of-turn tokens the file names, as LM Studio and llama.cpp's server do. ``on_text`` receives each
        piece as it comes; an exception it raises ends the reply there."""
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "stream": on_text is not None}
        for key, value in (("top_p", top_p), ("top_k", top_k), ("repeat_penalty", repetition_penalty)):
            if value is not None:
                body[key] = value
        if on_text is None:
            found = self._server.handle_chat_completions(body)
            self._raise_on_error(found)
            return {"text": found["choices"][0]["message"]["content"] or "",
                    "finish_reason": found["choices"][0]["finish_reason"], "usage": found.get("usage", {})}
        pieces, ended = [], {}

        def received(chunk) -> None:
            chunk = json.loads(chunk) if isinstance(chunk, str) else chunk
            if isinstance(chunk, dict) and chunk.get("error"):
                ended["error"] = chunk["error"]
                return
            for choice in (chunk or {}).get("choices", []):
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    pieces.append(text)
                    on_text(text)
                if choice.get("finish_reason"):
                    ended["finish_reason"] = choice["finish_reason"]
            if chunk and chunk.get("usage"):
                ended["usage"] = chunk["usage"]

        self._server.handle_chat_completions(body, received)
        if "error" in ended:
            raise RuntimeError(f"llama.cpp could not answer: {ended['error']}")
        return {"text": "".join(pieces), "finish_reason": ended.get("finish_reason", ""),
                "usage": ended.get("usage", {})}

    def _complete(self, body: dict) -> dict:
        found = self._server.handle_completions(body)
        self._raise_on_error(found)
        return found

    @staticmethod
    def _raise_on_error(found) -> None:
        if isinstance(found, dict) and found.get("error"):
            error = found["error"]
            raise RuntimeError(f"llama.cpp refused the request: {error.get('message', error) if isinstance(error, dict) else error}")

    # ---- over the loopback (only there in llama.cpp's API) ------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """llama.cpp's tokenization, special-token text read as the special tokens (as a chat prompt is)."""
        return self._post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})["tokens"]

    def apply_template(self, messages: list[dict]) -> str:
        """The prompt text llama.cpp renders from the GGUF's chat template, ready for the assistant's reply."""
        return self._post("/apply-template", {"messages": messages})["prompt"]

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self._server.listening_address.rstrip("/") + path,
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self._key}"})
        with _LOOPBACK.open(request, timeout=120) as response:
            return json.loads(response.read())


def coarse_kl(reference_logprobs, runtime_top: dict[int, float]) -> float:
    """KL(reference ‖ runtime) over the tokens llama.cpp ranked (each its own outcome) and one outcome for all others.
    Grouping outcomes never raises a KL divergence, so this is a lower bound of the full one, and exact when the rest
    holds little probability; ``reference_logprobs`` is the fine-tune's full log-softmax (a tensor or a list)."""
    p_rest, q_rest, kl = 1.0, 1.0, 0.0
    for token, q_log in runtime_top.items():
        p_log = float(reference_logprobs[token])
        p = math.exp(p_log)
        kl += p * (p_log - q_log) if p > 0 else 0.0
        p_rest -= p
        q_rest -= math.exp(q_log)
    p_rest, q_rest = max(p_rest, 0.0), max(q_rest, 1e-12)
    if p_rest > 1e-12:
        kl += p_rest * (math.log(p_rest) - math.log(q_rest))
    return max(kl, 0.0)
