"""Packaging, checked on this Linux machine: the Linux bundles are built with PyInstaller and self-tested headless,
the thin app's first run sets up its engine with uv, the .deb installs and runs from a temporary root, and the files
for other platforms are validated with their own tools where those run here.

The build tests take minutes; they share one session fixture per bundle. The thin app's first run takes its
torch wheel from a local folder: the CPU build that `pip download torch==2.13.0` finds (as the README's install
does), so no CUDA build is downloaded."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
APP_ID = "io.github.llamadesk.LlamaDesk"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed here")
    return found


def _run(*command, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_desktop_entry_and_appstream_metadata_validate():
    _run(_tool("desktop-file-validate"), PACKAGING / "linux" / f"{APP_ID}.desktop")
    result = _run(_tool("appstreamcli"), "validate", "--no-net", "--pedantic",
                  PACKAGING / "linux" / f"{APP_ID}.metainfo.xml")
    assert "Validation was successful" in result.stdout


def test_the_windows_installer_script_compiles(tmp_path):
    sys.path.insert(0, str(PACKAGING))
    import build

    build.render_icons()  # the installer's icon
    dist = tmp_path / "LlamaDesk"
    (dist / "_internal").mkdir(parents=True)
    (dist / "LlamaDesk.exe").write_bytes(b"MZ" + b"\0" * 1024)
    (dist / "_internal" / "base_library.zip").write_bytes(b"PK")
    out = tmp_path / "LlamaDesk-setup.exe"
    _run(_tool("makensis"), "-V2", f"-DVERSION={build.version()}", f"-DDIST={dist}", f"-DOUTFILE={out}",
         PACKAGING / "windows" / "llamadesk.nsi")
    assert out.read_bytes()[:2] == b"MZ"


def test_macos_and_release_files_are_well_formed():
    entitlements = plistlib.loads((PACKAGING / "macos" / "entitlements.plist").read_bytes())
    assert entitlements["com.apple.security.cs.disable-library-validation"] is True
    for script in (PACKAGING / "macos" / "sign_and_notarize.sh", PACKAGING / "linux" / "build_appimage.sh",
                   PACKAGING / "requirements" / "compile.sh"):
        _run("bash", "-n", script)
    compile((PACKAGING / "macos" / "dmg_settings.py").read_text(), "dmg_settings.py", "exec")
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    platforms = {entry["platform"] for entry in workflow["jobs"]["build"]["strategy"]["matrix"]["include"]}
    assert platforms == {"linux", "windows", "macos"}
    iss = (PACKAGING / "windows" / "llamadesk-offline.iss").read_text()
    assert "DiskSpanning=yes" in iss


# -- the Linux bundles, built and run for real ------------------------------------------------------------------

def _build(variant: str) -> dict:
    _run(sys.executable, PACKAGING / "build.py", variant, "--no-measure", timeout=1800, cwd=REPO)
    info = json.loads((REPO / "dist" / variant / "build-info.json").read_text())
    print(f"\n{variant} bundle: {info['folder_bytes'] / 2**20:.0f} MiB, built in {info['seconds']:.0f} s")
    return info


@pytest.fixture(scope="session")
def thin_bundle() -> dict:
    return _build("thin")


@pytest.fixture(scope="session")
def full_bundle() -> dict:
    return _build("full")


def _home_with_demo_model(tmp_path: Path, demo_model_dir: Path) -> Path:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / demo_model_dir.name).symlink_to(demo_model_dir, target_is_directory=True)
    return home


def _self_test(app: Path, home: Path, report: Path) -> dict:
    env = dict(os.environ, LLAMADESK_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    env.pop("LLAMADESK_ENGINE", None)
    started = time.monotonic()
    _run(app, "--self-test", report, env=env, timeout=900, cwd=home)
    result = json.loads(report.read_text())
    print(f"self-test of {app}: {time.monotonic() - started:.0f} s, losses {result['losses']}")
    return result


@pytest.mark.slow
def test_the_thin_deb_installs_sets_up_its_engine_on_first_run_and_trains(thin_bundle, tmp_path, demo_model_dir):
    sys.path.insert(0, str(PACKAGING))
    import build

    deb = build.build_deb("thin")
    root = tmp_path / "root"
    _run("dpkg-deb", "-x", deb, root)
    contents = _run("dpkg-deb", "--contents", deb).stdout
    for path in ("./opt/llamadesk/LlamaDesk", f"./usr/share/applications/{APP_ID}.desktop",
                 f"./usr/share/metainfo/{APP_ID}.metainfo.xml", f"./usr/share/icons/hicolor/256x256/apps/{APP_ID}.png",
                 "./usr/bin/llamadesk -> /opt/llamadesk/LlamaDesk"):
        assert path in contents, path
    app = root / "opt" / "llamadesk" / "LlamaDesk"
    assert not list((root / "opt" / "llamadesk").rglob("torch")), "the thin app carries no torch"
    home = _home_with_demo_model(tmp_path, demo_model_dir)
    env = dict(os.environ, LLAMADESK_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    started = time.monotonic()
    wheels = tmp_path / "torch-wheel"
    _run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "torch==2.13.0", "-d", wheels, timeout=600)
    setup = _run(app, "--setup-engine", "cpu", "--torch-wheels", wheels, env=env, timeout=900)
    print(f"first-run engine setup: {time.monotonic() - started:.0f} s")
    assert "Engine ready." in setup.stdout
    record = json.loads((home / "engine" / "installed.json").read_text())
    assert record["backend"] == "cpu" and record["selftest"]["ok"]
    assert record["selftest"]["versions"]["torch"].startswith("2.13.0")
    report = _self_test(app, home, tmp_path / "report.json")
    assert report["ok"] and report["frozen"] and report["engine"][0] == str(home / "engine" / "venv" / "bin" / "python")
    assert report["device"]["kind"] == "cpu" and len(report["losses"]) == 2


@pytest.mark.slow
def test_the_offline_bundle_trains_with_its_own_engine(full_bundle, tmp_path, demo_model_dir):
    app = REPO / "dist" / "full" / "LlamaDesk" / "LlamaDesk"
    home = _home_with_demo_model(tmp_path, demo_model_dir)
    report = _self_test(app, home, tmp_path / "report.json")
    assert report["ok"] and report["frozen"] and report["engine"] == [str(app), "--engine"]
    assert not (home / "engine").exists(), "the offline edition sets nothing up"
