"""Secrets (the Hugging Face token, API keys): kept in the OS keyring, never in a config, event or log.

Where no keyring exists (a headless Linux box without Secret Service), a secret goes to a file only the user can read
(mode 0600 in a 0700 folder), and the caller is told so it can warn.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from engine.light import paths

KEYRING_SERVICE = "LlamaDesk"


def fallback_file(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:60]
    if safe != name:  # a name with a URL in it: kept apart from every other by a digest
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return paths.home() / "secrets" / safe


def get(name: str) -> str | None:
    """The secret from the OS keyring, else the fallback file, else None."""
    try:
        import keyring

        stored = keyring.get_password(KEYRING_SERVICE, name)
        if stored:
            return stored
    except Exception:  # no keyring backend on this system: try the fallback file
        pass
    try:
        stored = fallback_file(name).read_text(encoding="utf-8").strip()
        return stored or None
    except OSError:
        return None


def put(name: str, value: str) -> str:
    """Store a secret; returns "keyring", or the path of the owner-only file when no keyring is available."""
    value = value.strip()
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, name, value)
        fallback_file(name).unlink(missing_ok=True)  # an older fallback copy
        return "keyring"
    except Exception:  # keyring.errors.NoKeyringError, a locked or broken backend, …
        pass
    path = fallback_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)  # created afresh, so no earlier, wider mode survives
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return str(path)


def delete(name: str) -> None:
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, name)
    except Exception:  # nothing stored, or no keyring
        pass
    fallback_file(name).unlink(missing_ok=True)


def fallback_warning(what: str, where: str) -> str:
    return (f"No system keyring was found, so the {what} is stored in {where}, readable only by your user account. "
            "Install a keyring service (GNOME Keyring, KWallet or KeePassXC) to keep it encrypted.")


def redact(text: str, secret: str | None, mask: str = "***") -> str:
    """Remove a secret from text that may be shown or logged (error messages can echo request headers)."""
    return text.replace(secret, mask) if secret else text
