"""Where LlamaDesk keeps its data: models cache, runs and caches.

Everything lives under one home folder so that a user can find, back up or delete it in one place, and tests can point
it at a temporary directory. Order of precedence: the CLI's ``--home`` flag (which sets ``LLAMADESK_HOME``), the
``LLAMADESK_HOME`` environment variable, then platformdirs' per-user data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "LLAMADESK_HOME"


def home() -> Path:
    configured = os.environ.get(ENV_HOME)
    if configured:
        return Path(configured).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir("LlamaDesk", appauthor=False))


def set_home(path: str | os.PathLike) -> Path:
    """Point this process (and the engine processes it starts) at another home folder."""
    resolved = Path(path).expanduser().resolve()
    os.environ[ENV_HOME] = str(resolved)
    return resolved


def models_dir() -> Path:
    """Converted and local models LlamaDesk manages itself (the demo model lives here)."""
    return _ensure(home() / "models")


def runs_dir() -> Path:
    return _ensure(home() / "runs")


def cache_dir(kind: str) -> Path:
    """Disposable caches (tokenized datasets, downloads); safe to delete at any time."""
    return _ensure(home() / "cache" / kind)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
