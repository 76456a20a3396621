"""A real llama.cpp runtime for the export tests: xllamacpp embeds llama.cpp's server in the process (test helper).

It is driven over its HTTP API (the raw token ids of a completion, the tokenizer and the template renderer are only
there), on an ephemeral loopback port guarded by a random API key. The app never uses it for that reason: it opens
no listening socket.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path

import pytest


class LlamaCpp:
    def __init__(self, gguf: Path, *, context: int = 1024):
        xllamacpp = pytest.importorskip("xllamacpp", reason="the test extra installs xllamacpp")
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = context
        params.n_parallel = 1
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
        params.warmup = False
        params.hostnames = ["127.0.0.1"]
        self._key = secrets.token_urlsafe(24)
        params.api_keys = [self._key]
        self.server = xllamacpp.Server(params)

    @property
    def base_url(self) -> str:
        """Its OpenAI-compatible API."""
        return self.server.listening_address.rstrip("/") + "/v1"

    @property
    def key(self) -> str:
        return self._key

    def greedy(self, prompt: list[int] | str, count: int, *, stop_at_end: bool = False) -> dict:
        """Greedy continuation of token ids (or text): the token ids and their text."""
        found = self._post("/completion", {
            "prompt": prompt, "n_predict": count, "temperature": 0, "top_k": 1, "ignore_eos": not stop_at_end,
            "cache_prompt": False, "return_tokens": True})
        return {"ids": found["tokens"], "text": found["content"]}

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.server.listening_address.rstrip("/") + path,
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self._key}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """llama.cpp's tokenization of a prompt, special-token text parsed as the tokens (as a chat prompt is)."""
        return self._post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})["tokens"]

    def apply_template(self, messages: list[dict]) -> str:
        """The prompt llama.cpp renders from the GGUF's own chat template."""
        return self._post("/apply-template", {"messages": messages})["prompt"]
