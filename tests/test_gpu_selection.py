"""Choosing the GPUs a run trains on: by PCI bus id, handed to CUDA by UUID, judged per GPU by the fit check, and
picked with checkboxes on the Train page. The GPUs are faked at pynvml, the hardware boundary."""

from __future__ import annotations

import pytest

from engine.light import config as run_config
from engine.light import estimator, fit, gpu, ranks
from tests import fake_nvml

GIB = 2**30
TWO = (fake_nvml.card(name="NVIDIA GeForce RTX 3060", total_gib=12.0, used_gib=1.0, bus_id="00000000:0A:00.0",
                      uuid="GPU-aaaa1111-0000-0000-0000-000000000000"),
       fake_nvml.card(name="NVIDIA GeForce RTX 4090", total_gib=24.0, used_gib=2.0, bus_id="00000000:01:00.0",
                      uuid="GPU-bbbb2222-0000-0000-0000-000000000000"))


def _config(**values):
    return run_config.RunConfig(model="llama-3.1-8b", dataset="d.jsonl").with_values(values)


def test_gpus_are_chosen_by_bus_id_or_cuda_index_and_handed_to_cuda_by_uuid(nvml):
    nvml(fake_nvml.module(*TWO))
    probe = gpu.probe()
    for entries in (["0000:0a:00.0", "01:00.0"], ["00000000:0A:00.0", "0"], ["1", "0"]):
        chosen = ranks.selected_gpus(_config(**{"distributed.gpus": entries}), probe)
        assert [c.name for c in chosen] == ["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4090"], entries
        # the order chosen is the ranks' order, whatever CUDA's own numbering
        assert ranks.visible_devices(chosen) == "GPU-aaaa1111-0000-0000-0000-000000000000,GPU-bbbb2222-0000-0000-" \
                                                "0000-000000000000"
    with pytest.raises(ranks.GpuSelectionError) as caught:
        ranks.selected_gpus(_config(**{"distributed.gpus": ["00000000:41:00.0"]}), probe)
    assert "no GPU '00000000:41:00.0'" in str(caught.value) and "00000000:01:00.0 (NVIDIA GeForce RTX 4090)" in str(
        caught.value)


def test_how_many_ranks_a_config_trains_with():
    assert ranks.world_size(_config()) == 1
    assert ranks.world_size(_config(**{"distributed.gpus": ["0", "1"]})) == 2
    assert ranks.world_size(_config(**{"device": "cpu", "distributed.cpu_processes": 3})) == 3
    assert ranks.world_size(_config(**{"distributed.cpu_processes": 3})) == 1  # CPU processes need device cpu
    assert _config(**{"distributed.gpus": ["0", "0"]}).problems() == ["distributed.gpus: a GPU is listed twice"]


def test_the_collective_libraries_are_held_to_the_loopback_interface():
    import psutil

    env = ranks.loopback_env()
    addresses = [a.address for a in psutil.net_if_addrs()[env["GLOO_SOCKET_IFNAME"]]]
    assert "127.0.0.1" in addresses and env["MASTER_ADDR"] == "127.0.0.1"
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"]


def _two_cards_with_free(free_bytes: int, other_free: int | None = None):
    """Two GPUs with this much free memory each (the second with ``other_free``)."""
    def card(name, bus, free):
        return fake_nvml.card(name=name, total_gib=free / GIB + 1, used_gib=1.0, bus_id=bus)
    return fake_nvml.module(card("NVIDIA GeForce RTX 4070", "00000000:01:00.0", free_bytes),
                            card("NVIDIA GeForce RTX 4060 Ti", "00000000:02:00.0", other_free or free_bytes))


def test_a_model_too_large_for_one_gpu_is_sharded_across_the_selected_ones(nvml):
    config = _config(**{"distributed.gpus": ["0", "1"], "data.cutoff": 1024, "train.micro_batch": 1})
    spec = fit.spec_for(config.model)
    ddp = estimator.estimate(spec, config, estimator.target_for(config, "ddp")).total
    fsdp = estimator.estimate(spec, config, estimator.target_for(config, "fsdp")).total
    assert fsdp < 0.75 * ddp  # the weights, adapters and optimizer state are halved; activations are not
    free = int((ddp + fsdp) / 2 / estimator.FIT_SHARE)  # enough for the sharded run, too little for a whole copy
    nvml(_two_cards_with_free(free))

    auto = fit.check(config)
    assert auto.strategy == "fsdp" and auto.verdict.status == "fits" and auto.estimate.total == fsdp
    assert [c["status"] for c in auto.per_gpu] == ["fits", "fits"]
    assert "sharded across the GPUs (FSDP)" in auto.text()

    asked = fit.check(config.with_values({"distributed.strategy": "ddp"}))
    assert asked.strategy == "ddp" and asked.verdict.status != "fits"
    first = asked.suggestions[0]
    assert first.overrides == {"distributed.strategy": "fsdp"} and first.need_bytes == fsdp


def test_the_gpu_with_the_least_free_memory_decides(nvml):
    config = _config(**{"distributed.gpus": ["00000000:01:00.0", "00000000:02:00.0"]})
    nvml(_two_cards_with_free(20 * GIB, other_free=6 * GIB))
    report = fit.check(config)
    assert report.verdict.free_bytes == 6 * GIB and report.gpu_name == "NVIDIA GeForce RTX 4060 Ti"
    assert {c["bus_id"]: c["free_bytes"] for c in report.per_gpu} == {"00000000:01:00.0": 20 * GIB,
                                                                      "00000000:02:00.0": 6 * GIB}
    one = fit.check(config.with_values({"distributed.gpus": ["00000000:02:00.0"]}))
    assert one.strategy is None and one.verdict.free_bytes == 6 * GIB and not one.per_gpu


def test_the_train_page_lists_each_gpu_with_a_checkbox(nvml, qtbot, home):
    from gui.widgets.config_form import ConfigForm

    nvml(fake_nvml.module(*TWO))
    form = ConfigForm([s for s in run_config.SETTINGS if s.path == "distributed.gpus"])
    qtbot.addWidget(form)
    picker = form.widgets["distributed.gpus"]
    form.load(run_config.RunConfig())
    assert picker.note.text() == "No NVIDIA GPU: the run trains on one device."
    picker.set_probe(gpu.probe())
    labels = [box.text() for box in picker.boxes.values()]
    assert labels == ["GPU 0: RTX 4090 · 01:00.0 · 22.0 GiB free",  # CUDA's numbering
                      "GPU 1: RTX 3060 · 0A:00.0 · 11.0 GiB free"]
    assert "None checked" in picker.note.text()
    with qtbot.waitSignal(form.sig_changed):
        list(picker.boxes.values())[1].setChecked(True)
    list(picker.boxes.values())[0].setChecked(True)
    data = form.apply(run_config.RunConfig().to_dict())
    assert data["distributed"]["gpus"] == ["00000000:0A:00.0", "00000000:01:00.0"]
    assert "2 GPUs train together" in picker.note.text()

    form.load(run_config.RunConfig().with_values({"distributed.gpus": ["1", "00000000:41:00.0"]}))
    checked = {box.text(): box.isChecked() for box in picker.boxes.values()}
    assert checked == {"GPU 0: RTX 4090 · 01:00.0 · 22.0 GiB free": False,
                       "GPU 1: RTX 3060 · 0A:00.0 · 11.0 GiB free": True,
                       "00000000:41:00.0 (not on this machine)": True}
    list(picker.boxes.values())[2].setChecked(False)  # the missing one is let go
    assert form.apply(run_config.RunConfig().to_dict())["distributed"]["gpus"] == ["1"]
