"""Choosing the GPUs a run trains on, from what the user picks to what the ranks are told: which GPUs CUDA shows them
and in which order, whether they shard the weights, and what the user reads when a pick is wrong; and the Train page's
checkboxes. The GPUs are faked at pynvml, the hardware boundary."""

from __future__ import annotations

import pytest

from engine.heavy import rank_launcher
from engine.heavy.train_failures import TrainingFailed
from engine.light import config as run_config
from engine.light import fit, gpu, ranks
from engine.light.run_folder import RunFolder
from tests import fake_nvml

GIB = 2**30
RTX_3060 = "GPU-aaaa1111-0000-0000-0000-000000000000"
RTX_4090 = "GPU-bbbb2222-0000-0000-0000-000000000000"
# NVML lists the 3060 first; CUDA (PCI bus order) numbers the 4090 on bus 01 as GPU 0
TWO = (fake_nvml.card(name="NVIDIA GeForce RTX 3060", total_gib=12.0, used_gib=1.0, bus_id="00000000:0A:00.0",
                      uuid=RTX_3060),
       fake_nvml.card(name="NVIDIA GeForce RTX 4090", total_gib=24.0, used_gib=2.0, bus_id="00000000:01:00.0",
                      uuid=RTX_4090))


def _config(**values):
    return run_config.RunConfig(model="llama-3.1-8b", dataset="d.jsonl").with_values(values)


def _cards(*sizes_gib: float):
    """GPUs of these sizes with 1 GiB in use on each (a desktop), on buses 01, 02, …"""
    return fake_nvml.module(*(fake_nvml.card(name=f"NVIDIA GPU {i}", total_gib=size, used_gib=1.0,
                                             bus_id=f"00000000:{i + 1:02X}:00.0") for i, size in enumerate(sizes_gib)))


def _ranks_are_told(nvml, cards, **values) -> dict[str, str]:
    """What the launcher hands the ranks for the GPUs picked in ``values``."""
    nvml(cards)
    return rank_launcher.gpu_environment(_config(**values), gpu.probe())


def test_cuda_shows_the_ranks_the_gpus_picked_in_the_order_picked(nvml):
    for picks in (["0000:0a:00.0", "01:00.0"], ["00000000:0A:00.0", "0"], ["1", "0"]):
        told = _ranks_are_told(nvml, fake_nvml.module(*TWO), **{"distributed.gpus": picks})
        assert told["CUDA_VISIBLE_DEVICES"] == f"{RTX_3060},{RTX_4090}", picks  # rank 0 trains on the 3060
    told = _ranks_are_told(nvml, fake_nvml.module(*TWO), **{"distributed.gpus": ["01:00.0", "0A:00.0"]})
    assert told["CUDA_VISIBLE_DEVICES"] == f"{RTX_4090},{RTX_3060}"


def test_a_gpu_that_is_not_on_this_machine_stops_the_start_naming_the_ones_it_has(nvml):
    with pytest.raises(TrainingFailed) as caught:
        _ranks_are_told(nvml, fake_nvml.module(*TWO), **{"distributed.gpus": ["00000000:41:00.0", "0"]})
    assert caught.value.kind == "gpu"
    assert str(caught.value) == ("distributed.gpus: no GPU '00000000:41:00.0' on this machine (it has: "
                                 "00000000:01:00.0 (NVIDIA GeForce RTX 4090), 00000000:0A:00.0 (NVIDIA GeForce RTX "
                                 "3060))")
    assert caught.value.hint.startswith("pick the GPUs again on the Train page")


@pytest.mark.parametrize(("sizes_gib", "strategy"), [
    ((24, 24), "ddp"),  # each card holds Llama 3.1 8B whole: no sharding traffic
    ((12, 12), "fsdp"),  # only the two together hold it
    ((24, 12), "fsdp"),  # the card with less room decides
    ((8, 8), "ddp"),  # not even sharded: each holds the whole model, and the fit check says it won't fit
])
def test_auto_shards_the_weights_only_when_the_picked_gpus_hold_the_model_no_other_way(nvml, sizes_gib, strategy):
    told = _ranks_are_told(nvml, _cards(*sizes_gib), **{"distributed.gpus": ["0", "1"]})
    assert told["LLAMADESK_STRATEGY"] == strategy


def test_ddp_chosen_by_the_user_is_kept_and_sharding_is_offered_first(nvml):
    config = _config(**{"distributed.gpus": ["0", "1"], "distributed.strategy": "ddp"})
    told = _ranks_are_told(nvml, _cards(12, 12), **{"distributed.gpus": ["0", "1"], "distributed.strategy": "ddp"})
    assert told["LLAMADESK_STRATEGY"] == "ddp"
    report = fit.check(config)
    assert report.verdict.status == "won't fit"
    assert report.suggestions[0].overrides == {"distributed.strategy": "fsdp"}
    sharded = fit.check(config.with_values(report.suggestions[0].overrides))
    assert sharded.verdict.status == "fits"
    assert "2 GPUs: the weights are sharded across the GPUs (FSDP); the estimate is for each GPU" in sharded.text()


def test_the_gpu_with_the_least_free_memory_decides(nvml):
    nvml(_cards(21, 7))
    report = fit.check(_config(**{"distributed.gpus": ["00000000:01:00.0", "00000000:02:00.0"]}))
    assert report.verdict.free_bytes == 6 * GIB and report.gpu_name == "NVIDIA GPU 1"
    assert {c["bus_id"]: c["free_bytes"] for c in report.per_gpu} == {"00000000:01:00.0": 20 * GIB,
                                                                      "00000000:02:00.0": 6 * GIB}
    one = fit.check(_config(**{"distributed.gpus": ["00000000:02:00.0"]}))
    assert one.strategy is None and one.verdict.free_bytes == 6 * GIB and not one.per_gpu


def test_how_many_ranks_a_config_trains_with():
    assert ranks.world_size(_config()) == 1
    assert ranks.world_size(_config(**{"distributed.gpus": ["0", "1"]})) == 2
    assert ranks.world_size(_config(**{"device": "cpu", "distributed.cpu_processes": 3})) == 3
    assert ranks.world_size(_config(**{"distributed.cpu_processes": 3})) == 1  # CPU processes need device cpu
    assert _config(**{"distributed.gpus": ["0", "0"]}).problems() == ["distributed.gpus: a GPU is listed twice"]


def test_the_ranks_reach_each_other_over_the_loopback_interface_only(home):
    import psutil

    folder = RunFolder.create("loopback")
    env = rank_launcher._rank_environment(_config(**{"device": "cpu", "distributed.cpu_processes": 2}), folder)
    addresses = [a.address for a in psutil.net_if_addrs()[env["GLOO_SOCKET_IFNAME"]]]
    assert "127.0.0.1" in addresses and env["MASTER_ADDR"] == "127.0.0.1"
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"]


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
