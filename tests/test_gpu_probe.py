"""The GPU probe with NVML faked at the pynvml boundary: a busy RTX 4090, a card without power readings, no driver."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.light import gpu
from tests import fake_nvml

GIB = 2**30


def test_rtx_4090_with_another_program_holding_memory(nvml):
    nvml(fake_nvml.module(fake_nvml.card(used_gib=3.6, processes=[(4242, "/usr/bin/blender", int(3.1 * GIB))],
                                         throttle=0x4 | 0x1)))
    result = gpu.probe()
    assert result.available and result.driver == "560.35.03" and result.cuda_driver == "12.6"
    card = result.gpus[0]
    assert card.name == "NVIDIA GeForce RTX 4090" and card.compute_capability == "8.9" and card.bf16
    assert card.total_bytes == 24 * GIB and card.free_bytes == int(24 * GIB) - int(3.6 * GIB)
    assert card.power_w == 310 and card.power_limit_w == 450 and card.sm_clock_mhz == 2520
    assert card.throttle_reasons == ["software power cap"]
    assert [(p.pid, p.name, p.used_bytes) for p in card.processes] == [(4242, "blender", int(3.1 * GIB))]
    text = gpu.describe(result)
    assert "another program is using 3.1 GiB: blender" in text and "bf16 yes" in text


def test_card_without_power_readings_and_old_architecture(nvml):
    nvml(fake_nvml.module(fake_nvml.card(name="Tesla T4", total_gib=16, capability=(7, 5), power_mw=None,
                                         limit_mw=None)))
    card = gpu.probe().gpus[0]
    assert card.power_w is None and card.power_limit_w is None
    assert not card.bf16, "Turing (7.5) has no bf16: training falls back to fp16"
    assert "power" not in gpu.describe(gpu.probe())


def test_no_driver_is_a_clean_state(nvml):
    nvml(fake_nvml.module(init_error=fake_nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found")))
    result = gpu.probe()
    assert not result.available and result.gpus == []
    assert result.reason == "no NVIDIA GPU: the NVIDIA driver library (NVML) was not found"
    assert gpu.describe(result).startswith("No NVIDIA GPU")


def test_the_real_pynvml_on_this_machine_does_not_raise():
    # Whatever this machine has (CI has no GPU), the probe answers instead of raising.
    result = gpu.probe()
    assert result.available or result.reason.startswith("no NVIDIA GPU")


def test_cli_gpus_json():
    out = subprocess.run([sys.executable, "-m", "engine", "gpus", "--json"], capture_output=True, text=True,
                         check=True).stdout
    data = json.loads(out)
    assert set(data) == {"available", "reason", "driver", "cuda_driver", "gpus"}


TWO = (fake_nvml.card(name="NVIDIA GeForce RTX 3060", total_gib=12.0, used_gib=1.0, bus_id="00000000:0A:00.0",
                      uuid="GPU-aaaa1111-0000-0000-0000-000000000000"),
       fake_nvml.card(name="NVIDIA GeForce RTX 4090", total_gib=24.0, used_gib=2.0, bus_id="00000000:01:00.0",
                      uuid="GPU-bbbb2222-0000-0000-0000-000000000000"))


@pytest.mark.parametrize("visible, names", [
    (None, ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3060"]),  # CUDA's numbers follow the PCI bus
    ("1", ["NVIDIA GeForce RTX 3060"]),
    ("GPU-aaaa", ["NVIDIA GeForce RTX 3060"]),  # a UUID prefix, as CUDA accepts it
    ("1,0", ["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4090"]),
    ("0,7,1", ["NVIDIA GeForce RTX 4090"]),  # CUDA stops at the first entry that names no GPU
    ("GPU-", []),  # ambiguous: both match
    ("", []),
])
def test_gpus_are_numbered_as_cuda_numbers_them(nvml, visible, names):
    nvml(fake_nvml.module(*TWO))
    result = gpu.probe()
    assert [g.pci_bus_id for g in result.gpus] == ["00000000:0A:00.0", "00000000:01:00.0"]
    assert [g.name for g in gpu.cuda_devices(result, visible)] == names


def test_the_fit_check_reads_the_gpu_the_run_will_use(nvml, monkeypatch):
    from engine.light import config as run_config
    from engine.light import fit

    nvml(fake_nvml.module(*TWO))
    config = run_config.from_mapping({"model": "llama-3.2-1b", "dataset": "d.jsonl"})
    assert fit.check(config).gpu_name == "NVIDIA GeForce RTX 4090"  # CUDA device 0, though NVML lists it second
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    report = fit.check(config)
    assert report.gpu_name == "NVIDIA GeForce RTX 3060" and report.verdict.free_bytes == 11 * GIB
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert fit.check(config).verdict is None and "CUDA_VISIBLE_DEVICES" in fit.check(config).reason


def test_the_engine_numbers_cuda_devices_in_pci_order():
    probe = ("import os, engine.cli as c; c.main(['models', '--json']); "
             "print(os.environ.get('CUDA_DEVICE_ORDER'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={k: v for k, v in __import__("os").environ.items() if k != "CUDA_DEVICE_ORDER"})
    assert out.stdout.strip().splitlines()[-1] == "PCI_BUS_ID"
