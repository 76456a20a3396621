"""The Hugging Face access token: kept in the OS keyring, never in a plain file, config, event or log."""

from __future__ import annotations

import os

KEYRING_SERVICE = "LlamaDesk"
KEYRING_USER = "huggingface-token"


def get_token() -> str | None:
    """The token from the OS keyring, else the HF_TOKEN environment variable, else None."""
    try:
        import keyring

        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        if stored:
            return stored
    except Exception:  # no keyring backend on this system: fall through to the environment
        pass
    return os.environ.get("HF_TOKEN") or None


def set_token(token: str) -> None:
    import keyring

    keyring.set_password(KEYRING_SERVICE, KEYRING_USER, token.strip())


def delete_token() -> None:
    import keyring

    try:
        keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
    except keyring.errors.PasswordDeleteError:
        pass


def redact(text: str, token: str | None) -> str:
    """Remove the token from text that may be shown or logged (error messages can echo request headers)."""
    return text.replace(token, "hf_***") if token else text
