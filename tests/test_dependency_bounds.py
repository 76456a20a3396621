"""Install what was tested: pyproject.toml bounds each engine library to the minor release that
packaging/requirements/engine.in pins (the versions the suite passes with), so a fresh `pip install -e .` cannot pick
a newer minor than the one tested; the offline edition refuses to build from an environment that differs from the
platform lock."""

from __future__ import annotations

import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "packaging"))
import build  # noqa: E402

ENGINE_IN = REPO / "packaging" / "requirements" / "engine.in"


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {build._normal(r.name): r for r in map(Requirement, project["dependencies"])}


def _pinned() -> dict[str, Version]:
    pins = {}
    for line in ENGINE_IN.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[build._normal(name)] = Version(version)
    return pins


# The fast-moving machine-learning stack: a minor release changes behaviour (transformers 5.25 turned on hub kernels).
# The other engine libraries are bounded to the tested major release.
MINOR_BOUND = {"transformers", "peft", "accelerate", "bitsandbytes", "datasets", "huggingface-hub", "safetensors",
               "gguf", "libggml-python", "openai", "sentencepiece"}


def test_each_engine_library_is_bounded_to_the_tested_release():
    declared, pinned = _declared(), _pinned()
    shared = set(declared) & set(pinned)
    assert MINOR_BOUND <= shared
    for name in sorted(shared):
        tested, spec = pinned[name], declared[name].specifier
        assert spec.contains(tested), f"{name}: pyproject's {spec} excludes the tested {tested}"
        major, minor = tested.release[:2]
        untested = Version(f"{major}.{minor + 1}") if name in MINOR_BOUND or major == 0 else Version(f"{major + 1}")
        assert not spec.contains(untested, prereleases=False), (
            f"{name}: pyproject's {spec} admits {untested}, a release the suite never passed with; bound it "
            f"below {untested} (and update engine.in when moving on)")


def test_the_test_environment_is_the_platform_lock():
    """The README's test command installs the lock, so what the suite passes with is what the installers ship."""
    assert build.lock_differences(build.platform_lock()) == []


def test_the_offline_build_refuses_an_environment_that_differs_from_the_lock(tmp_path):
    from importlib import metadata

    lock = tmp_path / "engine-linux.txt"
    lock.write_text(f"pyyaml=={metadata.version('PyYAML')} \\\n    --hash=sha256:00\n"
                    "transformers==0.0.1 \\\n    --hash=sha256:00\n", encoding="utf-8")
    assert build.lock_differences(lock) == [
        f"transformers: the lock has 0.0.1, this environment {metadata.version('transformers')}"]
    with pytest.raises(SystemExit) as refused:
        build.check_environment(lock)
    assert "refusing to build the offline edition" in str(refused.value)
    assert f"pip install --no-deps --require-hashes -r {lock}" in str(refused.value)
