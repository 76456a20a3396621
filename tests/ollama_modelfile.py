"""Ollama's reading of a Modelfile and rendering of its TEMPLATE, by the Go program in tests/go/ollama_modelfile
(test helper): built once per session with the Go toolchain; tests that need it skip where Go is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "go" / "ollama_modelfile"


def build(folder: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs Go (Debian: apt-get install golang-go; .ci/run installs it)")
    out = folder / "ollama_modelfile"
    env = dict(os.environ, GOFLAGS="-mod=mod", GOCACHE=str(folder / "cache"), GOPATH=str(folder / "path"),
               GOTOOLCHAIN="local", CGO_ENABLED="0")
    subprocess.run([go, "build", "-o", str(out), "."], cwd=SOURCE, env=env, check=True, timeout=300)
    return out


def read(reader: Path, modelfile: str, conversations: list, *, today: str = "") -> dict:
    """The Modelfile's FROM, TEMPLATE, SYSTEM and PARAMETERs as Ollama reads them, and each conversation's prompt as
    Ollama renders it on ``today`` (YYYY-MM-DD; the clock's day when empty)."""
    done = attempt(reader, modelfile, conversations, today=today)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def attempt(reader: Path, modelfile: str, conversations: list, *, today: str = "") -> subprocess.CompletedProcess:
    """The reader's run, failed or not: a Modelfile Ollama refuses fails with Ollama's reason on stderr."""
    given = {"modelfile": modelfile, "conversations": conversations, "today": today}
    return subprocess.run([str(reader)], input=json.dumps(given), capture_output=True, text=True, timeout=60)
