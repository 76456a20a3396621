"""Launching a run's ranks on this machine with torchrun's machinery (torch.distributed.elastic), and speaking for them.

The engine process the client started stays the one it talks to: it fetches the model and tokenizes the data once,
then starts one rank per GPU (or CPU process) and waits. Rank 0 writes the run folder; this process passes its events
on to the client and the client's commands on to rank 0. When a rank fails, the elastic agent ends the others and
this process says which rank failed and why; the checkpoints stay, so the run resumes.

The ranks meet in a file (torch's FileStore, through a rendezvous handler registered here) instead of torchrun's TCP
store, which would listen on every network interface; gloo and NCCL are told to use the loopback interface. So a
multi-GPU run, like the rest of the app, listens on no public interface.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist
from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous import (
    RendezvousHandler,
    RendezvousInfo,
    RendezvousParameters,
    RendezvousStoreInfo,
    rendezvous_handler_registry,
)
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from engine.heavy import device as devices
from engine.heavy import distributed
from engine.heavy.events import Emitter
from engine.heavy.run_inputs import model_dir_for, prepare_data
from engine.heavy.train_failures import TrainingFailed
from engine.heavy.train_setup import tokenizer_for
from engine.light import fit, gpu, paths, protocol, ranks
from engine.light.errors import ModelSourceError
from engine.light.run_folder import RunFolder

log = logging.getLogger("engine.ranks")
BACKEND = "llamadesk-file"
TERMINAL = ("finished", "stopped", "paused", "failed")
# What each rank runs after the interpreter: the engine's command line. (A test's fault injection puts its wrapper
# of the engine here, so that the ranks run it too: tests/out_of_memory_at.py.)
RANK_PROGRAM = ("-m", "engine")


def run(config, folder: RunFolder, emitter: Emitter, control, *, resuming: bool) -> int:
    world = ranks.world_size(config)
    env = _rank_environment(config, folder)
    # Once, here: the download and the tokenized cache that every rank then reads.
    tokenizer = tokenizer_for(model_dir_for(config, emitter))
    prepare_data(config, tokenizer, emitter)
    folder.clear_rank_failures()
    where = "CPU processes" if config.device == "cpu" else "GPUs"
    emitter.emit(protocol.Log("info", f"starting {world} training processes (one per rank) on {world} {where}"))

    relay = _Relay(folder, emitter)
    relay.start()
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=world, run_id=folder.name, rdzv_backend=BACKEND,
                          rdzv_endpoint=env[distributed.RENDEZVOUS_FILE] + ".agent", max_restarts=0,
                          monitor_interval=0.2, start_method="spawn",
                          logs_specs=DefaultLogsSpecs(log_dir=str(folder.ranks_dir / "elastic")))
    args = [*RANK_PROGRAM, "--home", str(paths.home()), "rank", str(folder.path)] + (["--resume"] if resuming else [])
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the ranks inherit this process's environment
    try:
        elastic_launch(launch, sys.executable)(*args)
        failure = None
    except ChildFailedError as exc:
        failure = exc
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        relay.stop()
        Path(env[distributed.RENDEZVOUS_FILE]).unlink(missing_ok=True)
    if failure is None and relay.last_state in ("finished", "stopped", "paused"):
        return 0
    if relay.last_state == "failed":  # rank 0 said what went wrong itself
        return 1
    raise _explain(failure, folder, world)


def _rank_environment(config, folder: RunFolder) -> dict[str, str]:
    env = dict(ranks.loopback_env())
    env[distributed.RENDEZVOUS_FILE] = str(folder.ranks_dir / "rendezvous")
    folder.ranks_dir.mkdir(exist_ok=True)
    for stale in (env[distributed.RENDEZVOUS_FILE], env[distributed.RENDEZVOUS_FILE] + ".agent"):
        Path(stale).unlink(missing_ok=True)
    if devices.resolve_device(config.device) == "cuda":
        env.update(gpu_environment(config, gpu.probe()))
    else:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // ranks.world_size(config))))
    return env


def gpu_environment(config, reading: gpu.Probe) -> dict[str, str]:
    """What the ranks are told about the GPUs ``distributed.gpus`` selects: CUDA sees those alone, in that order
    (rank N trains on the Nth), and whether they shard the weights."""
    try:
        cards = ranks.selected_gpus(config, reading)
    except ranks.GpuSelectionError as exc:
        raise TrainingFailed("gpu", str(exc), "pick the GPUs again on the Train page, or fix distributed.gpus")
    return {"CUDA_VISIBLE_DEVICES": ranks.visible_devices(cards), distributed.STRATEGY: _strategy(config, reading)}


def _strategy(config, reading: gpu.Probe) -> str:
    """DDP or FSDP: the config's choice, or for auto what the fit check chose for the selected GPUs."""
    if config.distributed.strategy != "auto":
        return config.distributed.strategy
    try:
        return fit.check(config, probe=reading).strategy or "ddp"
    except ModelSourceError:  # no architecture facts to estimate with: each GPU holds the model
        return "ddp"


def _explain(failure: ChildFailedError | None, folder: RunFolder, world: int) -> TrainingFailed:
    """One message for the client: the rank that failed first, in its own words when it recorded them."""
    found = folder.latest_checkpoint()
    resume = (f"resume the run: it continues from step {found[0]}, its latest checkpoint" if found else
              "start the run again (it had not saved a checkpoint yet)")
    own = [f for f in folder.rank_failures() if not f.get("peer")]
    if own:
        first = own[0]
        return TrainingFailed(first.get("kind", "rank_failed"),
                              f"rank {first['rank']} of {world}: {first.get('message', 'failed')}; the other ranks "
                              "were stopped",
                              first.get("hint") or resume, retry=first.get("retry"))
    if failure is not None and failure.failures:
        rank, info = min(failure.failures.items(), key=lambda item: item[1].timestamp)
        how = (f"was killed by signal {-info.exitcode}" if info.exitcode < 0 else
               f"ended with exit code {info.exitcode}")
        return TrainingFailed("rank_failed", f"rank {rank} of {world} {how}; the other ranks were stopped "
                              f"(its log: {folder.ranks_dir})", resume)
    return TrainingFailed("rank_failed", f"the {world} training processes ended without finishing", resume)


class _Relay:
    """Passes rank 0's events (appended to events.jsonl) on to the client while the ranks run."""

    def __init__(self, folder: RunFolder, emitter: Emitter):
        self.tail = folder.event_tail()
        self.tail.offset = folder.events_file.stat().st_size if folder.events_file.exists() else 0
        self.emitter = emitter
        self.last_state: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._pass_on()  # what rank 0 wrote last

    def _run(self) -> None:
        while not self._done.wait(0.1):
            self._pass_on()

    def _pass_on(self) -> None:
        for msg in self.tail.read():
            if isinstance(msg, protocol.State):
                self.last_state = msg.state
            self.emitter.forward(msg)


# ---- the rendezvous in a file ----------------------------------------------------------------------------------

class _FileRendezvous(RendezvousHandler):
    """One machine, one node: the agent's store is a FileStore, so nothing listens on a network port."""

    def __init__(self, params: RendezvousParameters):
        self.path, self.run_id = params.endpoint, params.run_id
        self._store = None

    def get_backend(self) -> str:
        return BACKEND

    def next_rendezvous(self) -> RendezvousInfo:
        if self._store is None:
            self._store = dist.FileStore(self.path, 1)
            self._store.set_timeout(timedelta(minutes=30))
        # MASTER_ADDR/PORT for the ranks, which meet in their own file instead (engine/heavy/distributed.py)
        return RendezvousInfo(dist.PrefixStore(self.run_id, self._store), 0, 1,
                              RendezvousStoreInfo(ranks.LOOPBACK, 0))

    def is_closed(self) -> bool:
        return False

    def set_closed(self) -> None:
        pass

    def num_nodes_waiting(self) -> int:
        return 0

    def get_run_id(self) -> str:
        return self.run_id

    def shutdown(self) -> bool:
        return True


rendezvous_handler_registry.register(BACKEND, _FileRendezvous)
