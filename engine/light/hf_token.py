"""The Hugging Face access token, in the keyring like every secret (engine/light/secret_store.py)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.light import secret_store

KEYRING_SERVICE = secret_store.KEYRING_SERVICE
KEYRING_USER = "huggingface-token"


def token_file() -> Path:
    return secret_store.fallback_file(KEYRING_USER)


def get_token() -> str | None:
    """The token from the OS keyring, else the fallback file, else the HF_TOKEN environment variable, else None."""
    return secret_store.get(KEYRING_USER) or os.environ.get("HF_TOKEN") or None


def set_token(token: str) -> str:
    """Store the token; returns "keyring", or the path of the owner-only file when no keyring is available."""
    return secret_store.put(KEYRING_USER, token)


def delete_token() -> None:
    secret_store.delete(KEYRING_USER)


def fallback_warning(where: str) -> str:
    return secret_store.fallback_warning("token", where)


def redact(text: str, token: str | None) -> str:
    """Remove the token from text that may be shown or logged (error messages can echo request headers)."""
    return secret_store.redact(text, token, "hf_***")
