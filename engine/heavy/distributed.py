"""One rank of a multi-process run: joining the process group, and agreeing with the other ranks at step boundaries.

Every rank runs the same recipe (train.py); only rank 0 speaks to the client and writes the run folder. A stop or
pause reaches rank 0 (through the run folder's commands file); at the next step boundary every rank learns of it from
a small all-reduce, so all of them save the same checkpoint and end together.
"""

from __future__ import annotations

import datetime
import gc
import os

import torch
import torch.distributed as dist

# Set by the engine's launcher on one machine: the file the ranks meet in (torch's FileStore). Without it the ranks
# meet through torchrun's own variables (MASTER_ADDR, MASTER_PORT), as on a cluster.
RENDEZVOUS_FILE = "LLAMADESK_RENDEZVOUS_FILE"
STRATEGY = "LLAMADESK_STRATEGY"  # ddp or fsdp, as the launcher resolved distributed.strategy for these GPUs
TIMEOUT = datetime.timedelta(minutes=30)  # a collective waits this long for a slow rank (a long evaluation, a save)


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def sharded() -> bool:
    """Whether the ranks shard the weights (FSDP) instead of each holding the whole model (DDP)."""
    return world_size() > 1 and os.environ.get(STRATEGY) == "fsdp"


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def join(device: str) -> None:
    """Join the run's process group: gloo on the CPU, NCCL on CUDA GPUs (one per rank, by LOCAL_RANK). The Trainer
    (through accelerate) then uses this group."""
    if dist.is_initialized() or world_size() < 2:
        return
    if device == "cuda":
        torch.cuda.set_device(local_rank())
    backend = "nccl" if device == "cuda" else "gloo"
    path = os.environ.get(RENDEZVOUS_FILE)
    if path:  # one machine: no TCP store listens anywhere
        store = dist.FileStore(path, world_size())
        dist.init_process_group(backend, store=store, rank=rank(), world_size=world_size(), timeout=TIMEOUT)
    else:
        dist.init_process_group(backend, timeout=TIMEOUT)


def leave() -> None:
    if dist.is_initialized():
        # The Trainer and its callback hold each other, so the DDP model and its pending gloo work outlive the run
        # until a garbage collection; one at interpreter exit can abort the process (SIGABRT, "terminate called
        # without an active exception"), and the launcher then stops rank 0 mid-save. Free them while all is alive.
        gc.collect()
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def agree(flags: list[int], device) -> list[int]:
    """Each flag's largest value over all ranks (one small all-reduce); the flags unchanged in a single process."""
    if not active():
        return flags
    tensor = torch.tensor(flags, dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [int(v) for v in tensor.tolist()]


def total(value: int, device) -> int:
    """A count summed over all ranks (the tokens each rank trained on); the count itself in a single process."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return int(tensor.item())


def is_peer_failure(exc: BaseException) -> bool:
    """Whether an error says another rank went away (its connection closed), not what went wrong in this one."""
    kinds = tuple(k for k in (getattr(dist, "DistNetworkError", None), getattr(dist, "DistBackendError", None))
                  if k is not None)
    text = str(exc).lower()
    return (bool(kinds) and isinstance(exc, kinds)) or any(
        words in text for words in ("connection closed by peer", "connection reset by peer", "broken pipe",
                                    "remote process exited", "socket timeout"))
