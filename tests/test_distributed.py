"""Several training processes (ranks) on a 2-core CPU: two gloo ranks train a tiny random-weight LLaMA in 4-bit, as two
GPUs would with NCCL. The engine launches them with torchrun's machinery, rank 0 alone speaks and writes the run
folder, and pause, resume and a killed rank behave as in a single process. FSDP needs CUDA GPUs: here only what comes
before it starts is checked."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from engine.light import config as run_config
from engine.light import protocol, ranks
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess, of_type, state

# Losses of one process and of two ranks with the same global batch differ only by the order float32 sums are taken
# in (the two ranks' gradients are averaged by an all-reduce): about 1e-7 relative, measured; 1e-5 leaves room for
# another CPU's kernels and still catches other rows (another data order differs by 1.2e-3 at step 1, measured).
RELATIVE = 1e-5


def _settings(tiny_model, dataset, **train):
    train = {"max_steps": 8, "save_steps": 4, "learning_rate": 0.01, "compare_base": "false", **train}
    return ["--set", f"model={tiny_model}", "--set", f"dataset={dataset}", "--set", "device=cpu",
            "--set", "data.validation_share=0.1", "--set", "lora.dropout=0"] + [
        part for key, value in train.items() for part in ("--set", f"train.{key}={value}")]


def _losses(folder: RunFolder) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in folder.metrics() if m.get("loss") is not None}


def _ranks_of(engine: EngineProcess) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(engine.proc.pid).children(recursive=True):
        try:
            if "rank" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_model, small_dataset) -> dict[int, float]:
    """The losses of one process with micro-batch 4: what two ranks of micro-batch 2 must reproduce."""
    home = tmp_path_factory.mktemp("one-process")
    one = EngineProcess(home, "train", "--json", *_settings(tiny_model, small_dataset, micro_batch=4),
                        "--set", "run_name=one")
    assert one.finish() == 0, one.stderr.decode()[-3000:]
    losses = _losses(RunFolder(home / "runs" / "one"))
    assert list(losses) == list(range(1, 9)) and losses[8] < losses[1] - 0.2  # it learned: the curve says something
    return losses


def _same_curve(reference: dict[int, float], losses: dict[int, float]) -> None:
    print("one process:", reference, "\nranks:      ", losses)
    assert list(losses) == list(reference)  # rank 0 alone wrote metrics.jsonl: each step once
    for step in reference:
        assert losses[step] == pytest.approx(reference[step], rel=RELATIVE), step


@pytest.mark.slow
def test_two_ranks_train_as_one_process_with_the_same_global_batch(home, tiny_model, small_dataset, one_process):
    two = EngineProcess(home, "train", "--json", *_settings(tiny_model, small_dataset, micro_batch=2),
                        "--set", "distributed.cpu_processes=2", "--set", "run_name=two")
    listening = []
    two.wait_for(of_type(protocol.Progress))
    for rank in _ranks_of(two):  # what the ranks listen on while they train
        listening += [c.laddr.ip for c in rank.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert two.finish() == 0, two.stderr.decode()[-3000:]

    ranked = RunFolder(home / "runs" / "two")
    _same_curve(one_process, _losses(ranked))
    print("the ranks listen on:", listening)
    assert listening and all(ipaddress.ip_address(ip).is_loopback for ip in listening), listening

    finished = [m for m in two.messages if isinstance(m, protocol.Finished)]
    assert len(finished) == 1 and ranked.has_adapter
    assert [m.step for m in two.messages if isinstance(m, protocol.CheckpointSaved)] == [4, 8]
    checkpoint = ranked.latest_checkpoint()[1]
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    assert ranked.summary().status == "finished" and ranked.lock_holder() is None
    states = [m.state for m in two.messages if isinstance(m, protocol.State)]
    assert states.count("finished") == 1 and "failed" not in states


@pytest.mark.slow
def test_pause_and_stop_reach_every_rank_and_resume_goes_on(home, tiny_model, small_dataset):
    args = _settings(tiny_model, small_dataset, micro_batch=2, max_steps=40, save_steps=100)
    engine = EngineProcess(home, "train", "--json", *args, "--set", "distributed.cpu_processes=2",
                           "--set", "run_name=paused")
    engine.wait_for(of_type(protocol.Progress))
    ranks = _ranks_of(engine)
    assert len(ranks) == 2
    engine.send(protocol.Pause())
    engine.wait_for(state("paused"))
    assert engine.finish() == 0
    assert not any(r.is_running() and r.status() != psutil.STATUS_ZOMBIE for r in ranks)
    folder = RunFolder(home / "runs" / "paused")
    at, _ = folder.latest_checkpoint()
    assert 0 < at < 40 and folder.summary().status == "paused"

    # Stopped by another client through the run folder (as a restarted app does): rank 0 reads it directly.
    resumed = EngineProcess(home, "train", "--json", "--resume", "paused")
    resumed.wait_for(of_type(protocol.Progress))
    folder.send_command(protocol.Stop())
    stopped = resumed.wait_for(state("stopped"))
    assert resumed.finish() == 0 and folder.summary().status == "stopped"
    again, _ = folder.latest_checkpoint()
    assert at < again < 40 and f"checkpoint at step {again}" in stopped.detail

    resumed = EngineProcess(home, "train", "--json", "--resume", "paused")
    assert resumed.finish() == 0, resumed.stderr.decode()[-3000:]
    progress = [m.step for m in resumed.messages if isinstance(m, protocol.Progress)]
    assert progress[0] == again + 1 and progress[-1] == 40
    assert list(_losses(folder)) == list(range(1, 41))
    assert folder.summary().status == "finished" and folder.has_adapter


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_and_it_resumes(home, tiny_model, small_dataset):
    args = _settings(tiny_model, small_dataset, micro_batch=2, max_steps=400, save_steps=2)
    engine = EngineProcess(home, "train", "--json", *args, "--set", "distributed.cpu_processes=2",
                           "--set", "run_name=killed")
    engine.wait_for(lambda m: isinstance(m, protocol.CheckpointSaved) and m.step >= 2)
    ranks = _ranks_of(engine)
    victim = next(r for r in ranks if r.environ().get("RANK") == "1")
    victim.send_signal(signal.SIGKILL)
    error = engine.wait_for(of_type(protocol.Error))
    engine.wait_for(state("failed"))
    assert engine.finish() == 1
    print(error)
    assert "rank 1 of 2" in error.message and "signal 9" in error.message
    assert "resume" in error.hint
    deadline = time.monotonic() + 30
    while any(r.is_running() and r.status() != psutil.STATUS_ZOMBIE for r in ranks):
        assert time.monotonic() < deadline, "a rank outlived the run"
        time.sleep(0.2)
    folder = RunFolder(home / "runs" / "killed")
    step, _ = folder.latest_checkpoint()
    summary = folder.summary()
    assert summary.status == "failed" and summary.resumable and folder.lock_holder() is None

    resumed = EngineProcess(home, "train", "--json", "--resume", "killed", "--set", "train.max_steps=" + str(step + 4))
    assert resumed.finish() == 0, resumed.stderr.decode()[-3000:]
    assert [m.step for m in resumed.messages if isinstance(m, protocol.Progress)][0] == step + 1
    assert folder.summary().status == "finished"


@pytest.mark.slow
def test_a_cluster_job_trains_on_two_nodes_and_its_run_opens_here(home, tiny_model, small_dataset, one_process,
                                                                  tmp_path):
    """The job folder, run as a cluster would: two "nodes" of one process each on 127.0.0.1, two launcher invocations
    meeting by c10d rendezvous."""
    job = tmp_path / "job"
    written = subprocess.run([sys.executable, "-m", "engine", "cluster", *_settings(tiny_model, small_dataset,
                              micro_batch=2), "--set", "run_name=on-cluster", "--out", str(job), "--nodes", "2",
                              "--gpus-per-node", "1"], capture_output=True, text=True, env={**os.environ,
                              "LLAMADESK_HOME": str(home)})
    assert written.returncode == 0, written.stderr
    for script in ("launch.sh", "slurm.sbatch"):
        assert subprocess.run(["bash", "-n", str(job / script)]).returncode == 0, script
    sbatch = (job / "slurm.sbatch").read_text()
    assert "#SBATCH --nodes=2" in sbatch and "#SBATCH --gpus-per-node=1" in sbatch
    task = yaml.safe_load((job / "sky.yaml").read_text())
    # the fields of a SkyPilot task (docs.skypilot.co: "YAML configuration"), no others
    assert set(task) <= {"name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup",
                         "run", "config"}
    assert task["num_nodes"] == 2 and task["resources"]["accelerators"] == "A100:1" and task["workdir"] == "."
    assert "bash launch.sh" in task["run"] and "requirements.txt" in task["setup"]
    requirements = (job / "requirements.txt").read_text()
    assert "torch==" in requirements and "PySide6" not in requirements
    assert not (job / "home" / "models").exists() and (job / "model" / "config.json").is_file()

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "LLAMADESK_HOME"}  # the job uses its own home
    env.update(NNODES="2", NPROC_PER_NODE="1", RDZV_ENDPOINT=f"127.0.0.1:{port}", RDZV_ID="test", PYTHON=sys.executable,
               GLOO_SOCKET_IFNAME=ranks.loopback_interface())
    nodes = [subprocess.Popen(["bash", str(job / "launch.sh")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, cwd=tmp_path) for _ in range(2)]
    logs = [node.communicate(timeout=300)[0].decode(errors="replace") for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    log = next(text for text in logs if "[finished]" in text)
    assert "rank 0 of 2 writes the run folder" in log and "data (from the cache)" in log  # tokenized by the job

    ran = RunFolder(job / "on-cluster")
    _same_curve(one_process, _losses(ran))
    shutil.copytree(ran.path, home / "runs" / "on-cluster")  # copied back
    back = RunFolder(home / "runs" / "on-cluster")
    assert back in RunFolder.all() and back.summary().status == "finished" and back.has_adapter
    assert back.load_config().model == str(tiny_model)  # the model as it was chosen here, not the job's copy
    chat = EngineProcess(home, "chat", "--run", "on-cluster", "--device", "cpu")
    chat.wait_for(state("ready"))
    chat.send(protocol.Chat("a", [{"role": "user", "content": "Hello"}], temperature=0.0, max_new_tokens=4))
    done = chat.wait_for(of_type(protocol.ChatDone))
    assert done.tokens > 0
    chat.send(protocol.Shutdown())
    assert chat.finish() == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_fsdp_ranks_load_with_accelerates_environment_and_ask_fsdp_for_sharded_checkpoints(home, tiny_model, tmp_path):
    """Two CPU ranks set up for FSDP with QLoRA (tests/fsdp_setup.py), stopping where FSDP would start: accelerate's
    FSDP environment is in place when from_pretrained reads the weights (so that rank 0 alone reads them), the 4-bit
    weights are stored in a float type FSDP can shard, the model leaves activation checkpointing to FSDP, and the
    Trainer asks FSDP for sharded checkpoints. FSDP training itself is unverified here (bench/multi_gpu.sh)."""
    folder = RunFolder.create("fsdp")
    folder.save_config(run_config.RunConfig(model=str(tiny_model), dataset="d.jsonl", device="cpu").with_values(
        {"train.gradient_checkpointing": True}))
    env = {**os.environ, **ranks.loopback_env(), "WORLD_SIZE": "2", "LLAMADESK_STRATEGY": "fsdp",
           "LLAMADESK_RENDEZVOUS_FILE": str(tmp_path / "rendezvous"), "OMP_NUM_THREADS": "1"}
    helper = Path(__file__).with_name("fsdp_setup.py")
    reports = [tmp_path / f"rank-{rank}.json" for rank in (0, 1)]
    started = [subprocess.Popen([sys.executable, str(helper), str(tiny_model), str(folder.path), str(report)],
                                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, stderr=subprocess.PIPE)
               for rank, report in enumerate(reports)]
    for rank in started:
        assert rank.wait(timeout=240) == 0, rank.stderr.read().decode()[-3000:]
    for report in reports:
        seen = json.loads(report.read_text(encoding="utf-8"))
        print(seen)
        assert seen["sharded"]
        assert seen["environment_at_load"] == {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}
        assert seen["4-bit weights stored as"] == ["torch.float32"]  # the compute dtype on the CPU
        assert seen["model_checkpoints_activations"] is False and seen["trainer_activation_checkpointing"] is False
        fsdp = seen["fsdp_plugin_args"]
        assert fsdp["activation_checkpointing"] is True and fsdp["state_dict_type"] == "SHARDED_STATE_DICT"
        assert fsdp["cpu_ram_efficient_loading"] is True and fsdp["sync_module_states"] is True
        assert fsdp["fsdp_version"] == 1 and fsdp["use_orig_params"] is False  # PEFT's FSDP-QLoRA guide


def test_sharded_ranks_train_with_an_optimizer_whose_state_an_fsdp_checkpoint_can_hold(monkeypatch):
    """A GPU run's usual optimizer, paged 8-bit AdamW, cannot be saved in an FSDP checkpoint: sharded ranks take
    AdamW unless the user chose an optimizer."""
    from engine.heavy import sharding

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LLAMADESK_STRATEGY", "ddp")
    assert sharding.optimizer("auto", "cuda") == "paged_adamw_8bit"
    monkeypatch.setenv("LLAMADESK_STRATEGY", "fsdp")
    assert sharding.optimizer("auto", "cuda") == "adamw_torch"
    assert sharding.optimizer("adamw_8bit", "cuda") == "adamw_8bit"
