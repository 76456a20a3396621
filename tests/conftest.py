"""Shared fixtures. Every test gets its own LlamaDesk home; the demo model is prepared once and shared read-only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The demo model is converted once per machine (about a minute) and reused; override with LLAMADESK_TEST_CACHE.
TEST_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", REPO / ".cache" / "test-home"))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    from engine.heavy.models import demo_model

    previous = os.environ.get("LLAMADESK_HOME")
    os.environ["LLAMADESK_HOME"] = str(TEST_CACHE)
    try:
        return demo_model.ensure_demo_model(progress=lambda message: None)
    finally:
        if previous is None:
            os.environ.pop("LLAMADESK_HOME", None)
        else:
            os.environ["LLAMADESK_HOME"] = previous


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty LlamaDesk home for each test."""
    folder = tmp_path / "llamadesk-home"
    monkeypatch.setenv("LLAMADESK_HOME", str(folder))
    return folder


@pytest.fixture
def demo_home(home, demo_model_dir) -> Path:
    """A home whose models folder already holds the demo model (linked, not copied)."""
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / demo_model_dir.name).symlink_to(demo_model_dir, target_is_directory=True)
    return home


@pytest.fixture(scope="session")
def tokenizer(demo_model_dir):
    """The demo model's real tokenizer (SmolLM2, ChatML template). Do not mutate; use fresh_tokenizer for that."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_model_dir)


@pytest.fixture
def fresh_tokenizer(demo_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_model_dir)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, demo_model_dir) -> Path:
    """A random-weight LLaMA (2 layers, hidden 64) with the demo model's real tokenizer: trains in milliseconds."""
    from engine.heavy.models.random_weights import write_model

    return write_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", demo_model_dir)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """The first 40 rows of the bundled sample, as JSONL."""
    import json

    import resources

    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))[:40]
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
