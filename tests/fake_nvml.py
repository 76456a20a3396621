"""A stand-in for the pynvml module: the only place tests fake hardware. Build one per scenario."""

from __future__ import annotations

import types

GIB = 2**30


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 - pynvml's name
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


def _unsupported(*_):
    raise NVMLError_NotSupported("Not Supported")


def card(name="NVIDIA GeForce RTX 4090", total_gib=24.0, used_gib=0.0, capability=(8, 9), power_mw=310_000,
         limit_mw=450_000, processes=(), throttle=0, bus_id=None, uuid=None):
    """One GPU: ``processes`` is a list of (pid, name, used bytes); ``bus_id`` and ``uuid`` default to ones made
    from its place in the list."""
    return {"name": name, "total": int(total_gib * GIB), "used": int(used_gib * GIB), "capability": capability,
            "power": power_mw, "limit": limit_mw, "processes": list(processes), "throttle": throttle,
            "bus_id": bus_id, "uuid": uuid}


def module(*cards, driver="560.35.03", cuda=12060, init_error: Exception | None = None):
    def init():
        if init_error is not None:
            raise init_error

    def memory(h):
        c = cards[h]
        return types.SimpleNamespace(total=c["total"], used=c["used"], free=c["total"] - c["used"])

    def power(h):
        return _unsupported() if cards[h]["power"] is None else cards[h]["power"]

    def limit(h):
        return _unsupported() if cards[h]["limit"] is None else cards[h]["limit"]

    names = {pid: name for c in cards for pid, name, _ in c["processes"]}
    return types.SimpleNamespace(
        NVMLError=NVMLError, NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2,
        nvmlInit=init, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: len(cards),
        nvmlSystemGetDriverVersion=lambda: driver, nvmlSystemGetCudaDriverVersion=lambda: cuda,
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda h: cards[h]["name"],
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=87, memory=40),
        nvmlDeviceGetTemperature=lambda h, kind: 66,
        nvmlDeviceGetPowerUsage=power, nvmlDeviceGetEnforcedPowerLimit=limit,
        nvmlDeviceGetClockInfo=lambda h, kind: 2520 if kind == 1 else 10501,
        nvmlDeviceGetMaxClockInfo=lambda h, kind: 2805,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: cards[h]["throttle"],
        nvmlDeviceGetCudaComputeCapability=lambda h: cards[h]["capability"],
        nvmlDeviceGetComputeRunningProcesses=lambda h: [types.SimpleNamespace(pid=p, usedGpuMemory=u)
                                                        for p, _, u in cards[h]["processes"]],
        nvmlDeviceGetGraphicsRunningProcesses=lambda h: [],
        nvmlSystemGetProcessName=lambda pid: names[pid],
        nvmlDeviceGetPciInfo=lambda h: types.SimpleNamespace(busId=cards[h]["bus_id"] or f"00000000:{h + 1:02X}:00.0"),
        nvmlDeviceGetUUID=lambda h: cards[h]["uuid"] or f"GPU-{h:08x}-1111-2222-3333-444455556666",
    )
