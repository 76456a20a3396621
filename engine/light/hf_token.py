"""The Hugging Face access token: kept in the OS keyring, never in a config, event or log.

Where no keyring exists (a headless Linux box without Secret Service), it goes to a file only the user can read
(mode 0600 in a 0700 folder), and the caller is told so it can warn.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.light import paths

KEYRING_SERVICE = "LlamaDesk"
KEYRING_USER = "huggingface-token"


def token_file() -> Path:
    return paths.home() / "secrets" / "huggingface-token"


def get_token() -> str | None:
    """The token from the OS keyring, else the fallback file, else the HF_TOKEN environment variable, else None."""
    try:
        import keyring

        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        if stored:
            return stored
    except Exception:  # no keyring backend on this system: try the fallback file
        pass
    try:
        stored = token_file().read_text(encoding="utf-8").strip()
        if stored:
            return stored
    except OSError:
        pass
    return os.environ.get("HF_TOKEN") or None


def set_token(token: str) -> str:
    """Store the token; returns "keyring", or the path of the owner-only file when no keyring is available."""
    token = token.strip()
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, KEYRING_USER, token)
        token_file().unlink(missing_ok=True)  # an older fallback copy
        return "keyring"
    except Exception:  # keyring.errors.NoKeyringError, a locked or broken backend, …
        pass
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)  # created afresh, so no earlier, wider mode survives
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return str(path)


def delete_token() -> None:
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
    except Exception:  # nothing stored, or no keyring
        pass
    token_file().unlink(missing_ok=True)


def fallback_warning(where: str) -> str:
    return (f"No system keyring was found, so the token is stored in {where}, readable only by your user account. "
            "Install a keyring service (GNOME Keyring, KWallet or KeePassXC) to keep it encrypted.")


def redact(text: str, token: str | None) -> str:
    """Remove the token from text that may be shown or logged (error messages can echo request headers)."""
    return text.replace(token, "hf_***") if token else text
