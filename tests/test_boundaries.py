"""Import boundaries: light engine modules load no torch; the GUI loads no ML library; the engine loads no Qt."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "trl")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    import json

    return set(json.loads(out.splitlines()[-1]))


def test_light_engine_modules_import_no_heavy_library():
    loaded = _loaded_after(
        "import engine.cli, engine.paths, engine.models.catalog, engine.models.local, engine.models.resolve, "
        "engine.data.problems, engine.data.formats, engine.data.readers, engine.data.pipeline"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_engine_help_and_models_do_not_load_torch():
    loaded = _loaded_after("from engine import cli\ncli.main(['models'])")
    assert "torch" not in loaded


def test_engine_never_imports_qt():
    loaded = _loaded_after("import engine.cli, engine.data.pipeline, engine.models.demo, engine.models.hub")
    assert not {m for m in loaded if m.startswith(("PySide", "PyQt"))}


def test_gui_window_loads_no_ml_library():
    loaded = _loaded_after(
        "import os\nos.environ['QT_QPA_PLATFORM']='offscreen'\nfrom gui import app\nw = app.build_window()"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
