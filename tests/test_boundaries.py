"""Import boundaries, stated by package:

- ``engine.light`` imports no ML library, no Qt and nothing from ``engine.heavy``: the GUI may import all of it;
- ``gui`` imports from the engine only ``engine.light`` (at any depth of a module), and a built window has loaded no
  ML library;
- ``engine`` (light, heavy and the command line) never imports Qt, and ``--help`` and ``models`` load no torch;
- the command line (``engine/cli/``) imports ``engine.heavy`` and the ML libraries only inside its commands.

The static checks read every import statement, those inside functions too; the runtime checks import in a fresh
interpreter and look at what got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "trl", "safetensors", "gguf")
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph")


def _imports(package: str) -> dict[str, set[str]]:
    """Module file → every module name its import statements name (``from a.b import c`` counts a.b and a.b.c)."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(REPO))] = names
    return found


def _offenders(package: str, forbidden) -> list[str]:
    return sorted(f"{file}: {name}" for file, names in _imports(package).items() for name in names
                  if forbidden(name))


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO).stdout
    return set(json.loads(out.splitlines()[-1]))


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_light_engine_names_no_heavy_library_no_qt_and_nothing_heavy():
    assert _offenders("engine/light", lambda n: _top(n) in HEAVY + QT or n.startswith("engine.heavy")) == []


def test_the_gui_imports_only_the_light_engine():
    def forbidden(name: str) -> bool:
        engine_module = name.startswith("engine.") and not name.startswith("engine.light") and name != "engine"
        return engine_module or _top(name) in HEAVY

    assert _offenders("gui", forbidden) == []


def test_the_engine_never_imports_qt():
    assert _offenders("engine", lambda n: _top(n) in QT) == []


def test_every_light_module_imports_without_loading_a_heavy_library():
    modules = sorted(f"engine.light.{p.stem}" for p in (REPO / "engine" / "light").glob("*.py")
                     if p.stem != "__init__")
    loaded = _loaded_after("import " + ", ".join(modules))
    assert not loaded & set(HEAVY + QT), loaded & set(HEAVY + QT)


def test_the_command_line_imports_heavy_modules_only_inside_its_commands():
    offenders = []
    for path in sorted((REPO / "engine" / "cli").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only: not inside functions
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.relative_to(REPO)}: {name}" for name in names
                          if _top(name) in HEAVY or name.startswith("engine.heavy")]
    assert offenders == []


def test_engine_help_and_models_do_not_load_torch():
    loaded = _loaded_after("from engine import cli\ncli.main(['models'])")
    assert "torch" not in loaded


def test_gui_window_loads_no_ml_library():
    loaded = _loaded_after(
        "import os\nos.environ['QT_QPA_PLATFORM']='offscreen'\nfrom gui import bootstrap\nw = bootstrap.build_window()"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
