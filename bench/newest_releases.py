"""What breaks against the newest releases: the project's libraries at their newest versions, bounds lifted, in a
fresh virtual environment, then the fast test tier there. Upgrades become a decision: this prints which libraries
moved past the tested versions (packaging/requirements/engine.in) and which tests then fail.

    python bench/newest_releases.py [--venv build/newest] [--tests "-m 'not slow'"] [--keep]

Needs the package index; takes about 10 minutes on two cores (install, then the fast tier). Prints a table of the
libraries that moved and pytest's summary; exits with pytest's code.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
import build  # noqa: E402 - the lock parser lives with the packaging

TORCH = "torch==2.13.0"  # the CPU wheel; torch itself is moved deliberately (packaging/README.md)
# The lock check is meant to fail here: this environment is not the lock.
DESELECT = ["tests/test_dependency_bounds.py::test_the_test_environment_is_the_platform_lock"]


def names(requirements: list[str]) -> list[str]:
    """Requirement names without their bounds (extras and markers dropped)."""
    from packaging.requirements import Requirement

    return [Requirement(r).name for r in requirements if "llamadesk" not in r]


def project_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    return [r for r in project["dependencies"] if not r.startswith("torch")] + extras["test"] + extras["tracking"]


def installed(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                         check=True).stdout
    return {build._normal(p["name"]): p["version"] for p in json.loads(out)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "newest")
    parser.add_argument("--tests", default="-m 'not slow'", help="pytest arguments (default: the fast tier)")
    parser.add_argument("--keep", action="store_true", help="reuse the environment if it exists")
    args = parser.parse_args()
    if args.venv.exists() and not args.keep:
        shutil.rmtree(args.venv)
    python = args.venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(args.venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, "--upgrade", *names(project_requirements())], check=True)  # newest, bounds lifted
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)

    tested = build._pins(ROOT / "packaging" / "requirements" / "engine.in")
    now = installed(python)
    moved = [(name, pinned, now.get(name, "missing")) for name, pinned in sorted(tested.items())
             if now.get(name) != pinned]
    print(f"\n{'library':<22} {'tested':<14} newest")
    for name, pinned, newest in moved:
        print(f"{name:<22} {pinned:<14} {newest}")
    if not moved:
        print("(every tested library is still the newest release)")
    deselect = [f"--deselect={test}" for test in DESELECT]
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *shlex.split(args.tests),
                             *deselect], cwd=ROOT)
    print(f"\nnewest releases: pytest exited {result.returncode} "
          f"({'all passed' if result.returncode == 0 else 'see the failures above before raising a bound'})")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
