"""First-run setup decisions: GPU and driver detection (NVML, then nvidia-smi) → the backend to install, with
recorded outputs of real tools; and the install steps as argument lists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gui import engine_env
from tests import fake_nvml

SMI = Path(__file__).parent / "data" / "nvidia-smi"


@pytest.mark.parametrize("recording, platform, gpu, driver, cuda, backend", [
    ("rtx4090-linux-560.csv", "linux", "NVIDIA GeForce RTX 4090", "560.35.03", (12, 6), "cu126"),
    ("rtx5090-linux-580.csv", "linux", "NVIDIA GeForce RTX 5090", "580.95.05", (13, 0), "cu130"),
    ("rtx3060-linux-535.csv", "linux", "NVIDIA GeForce RTX 3060", "535.183.01", (12, 2), "cpu"),
    ("rtx4070-windows-wddm-566.csv", "win32", "NVIDIA GeForce RTX 4070 Laptop GPU", "566.36", (12, 6), "cu126"),
    ("a5000x2-windows-tcc-573.csv", "win32", "NVIDIA RTX A5000", "573.24", (12, 8), "cu128"),
])
def test_nvidia_smi_query_recordings_choose_the_newest_build_the_driver_runs(recording, platform, gpu, driver, cuda,
                                                                               backend):
    """The machine-readable query reads the same on Linux and on Windows, whatever the driver model."""
    found = engine_env.parse_nvidia_smi((SMI / recording).read_text(), platform)
    assert (found.gpu, found.driver, found.cuda, found.source) == (gpu, driver, cuda, "nvidia-smi")
    assert engine_env.choose(found, platform).backend.key == backend


def test_the_query_asks_for_csv_without_header_or_units():
    assert engine_env.NVIDIA_SMI_QUERY == ["--query-gpu=name,driver_version", "--format=csv,noheader,nounits"]


def test_a_driver_too_old_is_explained_with_what_to_update():
    found = engine_env.parse_nvidia_smi((SMI / "rtx3060-linux-535.csv").read_text())
    linux, windows = engine_env.choose(found, "linux"), engine_env.choose(found, "win32")
    assert "supports CUDA 12.2" in linux.why and "needs CUDA 12.6 or newer" in linux.why
    assert linux.action == "update the NVIDIA driver to 560.28.03 or newer, then choose Reinstall"
    assert "560.76 or newer" in windows.action


def test_no_driver_and_macos_mean_cpu():
    found = engine_env.parse_nvidia_smi((SMI / "driver-not-loaded.txt").read_text())
    assert found.driver is None and engine_env.choose(found, "linux").backend.key == "cpu"
    rtx = engine_env.parse_nvidia_smi((SMI / "rtx4090-linux-560.csv").read_text())
    assert engine_env.choose(rtx, "darwin").backend.key == "cpu"


def test_detection_prefers_nvml_and_falls_back_to_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(fake_nvml.card(name="NVIDIA RTX A6000"),
                                                                driver="575.57.08", cuda=12090))
    found = engine_env.detect()
    assert (found.source, found.gpu, found.cuda) == ("nvml", "NVIDIA RTX A6000", (12, 9))
    assert engine_env.choose(found, "linux").backend.key == "cu128"

    broken = fake_nvml.module(init_error=fake_nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    smi = tmp_path / "nvidia-smi"  # a stand-in that answers the query as recorded, found on PATH like the real tool
    smi.write_text(f"#!/bin/sh\n[ \"$1 $2\" = \"{' '.join(engine_env.NVIDIA_SMI_QUERY)}\" ] || exit 2\n"
                   f"exec /bin/cat '{SMI / 'rtx4090-linux-560.csv'}'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = engine_env.detect()
    assert (found.source, found.gpu, found.driver) == ("nvidia-smi", "NVIDIA GeForce RTX 4090", "560.35.03")
    smi.unlink()
    found = engine_env.detect()
    assert found.source == "" and "driver library (NVML) was not found" in found.reason
    assert engine_env.choose(found, "linux").backend.key == "cpu"


def test_install_steps_are_argument_lists_from_the_lock_and_the_backend_index(tmp_path):
    env = engine_env.EngineEnv(tmp_path / "engine")
    sources = engine_env.Sources("/opt/uv", Path("engine-linux.txt"), Path("llamadesk-0.1.0-py3-none-any.whl"))
    steps = env.steps(engine_env.ALL_BACKENDS["cu128"], sources)
    assert [s.title for s in steps][-1] == "Self-test"
    assert all(isinstance(arg, str) for s in steps for arg in s.command)
    torch = next(s.command for s in steps if "torch==2.13.0" in s.command)
    assert torch[-2:] == ["--index-url", "https://download.pytorch.org/whl/cu128"]
    libraries = next(s.command for s in steps if "-r" in s.command)
    assert "--require-hashes" in libraries and "engine-linux.txt" in libraries
    offline = env.steps(engine_env.CPU, engine_env.Sources("/opt/uv", Path("l.txt"), Path("w.whl"),
                                                           wheels=tmp_path, offline=True))
    torch = next(s.command for s in offline if "torch==2.13.0" in s.command)
    assert "--no-index" in torch and "--index-url" not in torch


def test_every_platform_has_a_lock_without_torch():
    folder = Path(__file__).parent.parent / "packaging" / "requirements"
    for name in ("linux", "windows", "macos"):
        lock = (folder / f"engine-{name}.txt").read_text()
        pins = [line.split("==")[0] for line in lock.splitlines() if "==" in line and not line.startswith(" ")]
        assert "transformers" in pins and "bitsandbytes" in pins and "torch" not in pins
        assert "--hash=sha256:" in lock
