"""The GPU probe with NVML faked at the pynvml boundary: a busy RTX 4090, a card without power readings, no driver."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.light import gpu
from tests import fake_nvml

GIB = 2**30


@pytest.fixture
def nvml(monkeypatch):
    def install(fake):
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return install


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
