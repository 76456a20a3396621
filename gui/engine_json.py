"""The one-object JSON answers of the engine's ``--json`` commands (data check, cluster, costs): reading a line and
putting its ``{"error": {...}}`` into words."""

from __future__ import annotations

import json


def json_object(line: str) -> dict | None:
    """The line as a JSON object, or None for anything else a command prints."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def error_text(error: dict, fallback: str = "the engine failed") -> str:
    """"where: message" and, on its own line, "→ hint"."""
    message = str(error.get("message") or fallback)
    where, hint = error.get("where"), error.get("hint")
    text = f"{where}: {message}" if where else message
    return f"{text}\n→ {hint}" if hint else text
