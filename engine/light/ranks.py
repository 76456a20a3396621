"""How many processes (ranks) a run trains with, on which GPUs, and how they reach each other. No torch import: the
window and the fit check use it too.

A run with two or more GPUs in ``distributed.gpus`` (or ``distributed.cpu_processes`` above 1 on the CPU) trains with
one process per rank. The engine picks the GPUs by PCI bus id and hands them to CUDA as UUIDs in
CUDA_VISIBLE_DEVICES, so rank N trains on the Nth selected GPU whatever order CUDA would number them in.
"""

from __future__ import annotations

import sys

from engine.light import gpu

LOOPBACK = "127.0.0.1"


class GpuSelectionError(ValueError):
    """A GPU in distributed.gpus that this machine does not have."""


def world_size(config) -> int:
    """How many ranks the run trains with on this machine."""
    if config.device == "cpu":
        return config.distributed.cpu_processes
    return max(1, len(config.distributed.gpus))


def selected_gpus(config, probe: gpu.Probe) -> list[gpu.GpuInfo]:
    """The GPUs ``distributed.gpus`` names, in its order; empty when it names none. Each entry is a PCI bus id (any
    case, with or without the leading domain) or an index in CUDA's PCI-ordered numbering."""
    ordered = gpu.cuda_devices(probe)
    chosen = []
    for entry in config.distributed.gpus:
        found = find_gpu(entry, ordered)
        if found is None:
            have = ", ".join(f"{g.pci_bus_id or i} ({g.name})" for i, g in enumerate(ordered)) or "no NVIDIA GPU"
            raise GpuSelectionError(f"distributed.gpus: no GPU '{entry}' on this machine (it has: {have})")
        chosen.append(found)
    return chosen


def find_gpu(entry: str, ordered: list[gpu.GpuInfo]) -> gpu.GpuInfo | None:
    entry = str(entry).strip()
    if entry.isdigit():
        return ordered[int(entry)] if int(entry) < len(ordered) else None
    wanted = _bus_id(entry)
    for card in ordered:
        if card.pci_bus_id and _bus_id(card.pci_bus_id) == wanted:
            return card
        if card.uuid and card.uuid == entry:
            return card
    return None


def _bus_id(text: str) -> str:
    """"00000000:01:00.0", "0000:01:00.0" and "01:00.0" name the same GPU."""
    parts = text.lower().split(":")
    try:
        domain = int(parts[0], 16) if len(parts) == 3 else 0
    except ValueError:
        return text.lower()
    return f"{domain:08x}:" + ":".join(parts[-2:])


def visible_devices(cards: list[gpu.GpuInfo]) -> str:
    """CUDA_VISIBLE_DEVICES for these GPUs, in this order: their UUIDs, which name a GPU whatever CUDA's order (a
    card without a UUID reading by its NVML index, which CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA's too)."""
    return ",".join(card.uuid or str(card.index) for card in cards)


def loopback_interface() -> str:
    """The loopback network interface's name ("lo" on Linux, "lo0" on macOS): where gloo and NCCL are told to open
    their sockets, so ranks on one machine talk over loopback only."""
    try:
        import psutil

        for name, addresses in psutil.net_if_addrs().items():
            if any(getattr(a, "address", None) == LOOPBACK for a in addresses):
                return name
    except (ImportError, OSError):
        pass
    return "lo0" if sys.platform == "darwin" else "lo"


def loopback_env() -> dict[str, str]:
    """What keeps the collective libraries' sockets on the loopback interface."""
    name = loopback_interface()
    return {"MASTER_ADDR": LOOPBACK, "GLOO_SOCKET_IFNAME": name, "NCCL_SOCKET_IFNAME": name}
