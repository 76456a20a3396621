"""The GPU probe: what each NVIDIA GPU has and is doing, read through NVML (pynvml from nvidia-ml-py).

No torch import, so the GUI polls it directly. No driver, no GPU, or a reading a card does not support gives a clean
"no NVIDIA GPU" state or a missing field, never an exception to the caller. Hardware is read only in this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.light.units import gib

# Throttle ("clocks event") reason bits, as NVML defines them.
THROTTLE_REASONS = {
    0x1: "idle",
    0x2: "application clocks setting",
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x10: "sync boost",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
    0x100: "display clock setting",
}


@dataclass
class GpuProcess:
    pid: int
    name: str
    used_bytes: int | None


@dataclass
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    compute_capability: str | None = None
    utilization_pct: int | None = None
    memory_utilization_pct: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    memory_clock_mhz: int | None = None
    throttle_reasons: list[str] = field(default_factory=list)
    processes: list[GpuProcess] = field(default_factory=list)
    pci_bus_id: str | None = None  # "00000000:01:00.0": how NVML and CUDA (in PCI order) agree on which GPU is which
    uuid: str | None = None

    @property
    def bf16(self) -> bool:
        """bfloat16 arithmetic needs compute capability 8.0 (Ampere) or newer."""
        try:
            return float(self.compute_capability or 0) >= 8.0
        except ValueError:
            return False

    def other_processes_bytes(self, own_pid: int | None = None) -> int:
        return sum(p.used_bytes or 0 for p in self.processes if p.pid != own_pid)


@dataclass
class Probe:
    available: bool
    reason: str = ""  # why no GPU is available, in words
    driver: str | None = None
    cuda_driver: str | None = None  # the newest CUDA version the driver supports, e.g. "12.4"
    gpus: list[GpuInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        for gpu, info in zip(data["gpus"], self.gpus):
            gpu["bf16"] = info.bf16
        return data


NO_GPU = "no NVIDIA GPU"


def probe() -> Probe:
    try:
        import pynvml
    except ImportError:
        return Probe(False, f"{NO_GPU}: the nvidia-ml-py package is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, NoPermission, …
        return Probe(False, f"{NO_GPU}: {_nvml_reason(exc)}")
    try:
        count = pynvml.nvmlDeviceGetCount()
        result = Probe(count > 0, "" if count else f"{NO_GPU}: the driver reports no GPU",
                       driver=_text(_optional(lambda: pynvml.nvmlSystemGetDriverVersion())),
                       cuda_driver=_cuda_version(_optional(lambda: pynvml.nvmlSystemGetCudaDriverVersion())))
        for index in range(count):
            info = _device(pynvml, index)
            if info is not None:
                result.gpus.append(info)
        return result
    except Exception as exc:
        return Probe(False, f"{NO_GPU}: {_nvml_reason(exc)}")
    finally:
        _optional(lambda: pynvml.nvmlShutdown())


def _device(pynvml, index: int) -> GpuInfo | None:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    if memory is None:
        return None
    rates = _optional(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
    capability = _optional(lambda: pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    power = _optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
    limit = _optional(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    return GpuInfo(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        total_bytes=int(memory.total), free_bytes=int(memory.free), used_bytes=int(memory.used),
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
        utilization_pct=getattr(rates, "gpu", None), memory_utilization_pct=getattr(rates, "memory", None),
        temperature_c=_optional(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
        power_w=power / 1000 if power is not None else None,
        power_limit_w=limit / 1000 if limit is not None else None,
        sm_clock_mhz=_optional(lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
        sm_clock_max_mhz=_optional(lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)),
        memory_clock_mhz=_optional(lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM)),
        throttle_reasons=_throttle(pynvml, handle),
        processes=_processes(pynvml, handle),
        pci_bus_id=_text(_optional(lambda: pynvml.nvmlDeviceGetPciInfo(handle).busId)) or None,
        uuid=_text(_optional(lambda: pynvml.nvmlDeviceGetUUID(handle))) or None,
    )


# The engine makes CUDA number GPUs in PCI bus order, as NVML lists them; CUDA's own default ("fastest first") would
# let CUDA device 0 be another card than NVML's first, and the fit check would read the wrong GPU's memory.
CUDA_ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def cuda_devices(result: Probe, visible: str | None = None) -> list[GpuInfo]:
    """The GPUs as CUDA numbers them in the engine: in PCI bus order, filtered by ``visible`` (the value of
    CUDA_VISIBLE_DEVICES: indices or UUID prefixes, as CUDA reads them, stopping at the first entry that names no
    GPU; None: every GPU)."""
    ordered = sorted(result.gpus, key=lambda g: (g.pci_bus_id is None, (g.pci_bus_id or "").lower(), g.index))
    if visible is None:
        return ordered
    chosen: list[GpuInfo] = []
    for entry in (part.strip() for part in visible.split(",")):
        found = None
        if entry.isdigit() and int(entry) < len(ordered):
            found = ordered[int(entry)]
        elif entry.startswith("GPU-"):
            matches = [g for g in ordered if g.uuid and g.uuid.startswith(entry)]
            found = matches[0] if len(matches) == 1 else None
        if found is None or found in chosen:
            break  # CUDA ignores the rest of the list from an invalid entry on
        chosen.append(found)
    return chosen


def training_gpu(result: Probe) -> GpuInfo | None:
    """The GPU a run started now would train on: CUDA device 0 of the engine."""
    import os

    devices = cuda_devices(result, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return devices[0] if devices else None


def _throttle(pynvml, handle) -> list[str]:
    read = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
    bits = _optional(lambda: read(handle)) if read else None
    if not bits:
        return []
    return [name for bit, name in THROTTLE_REASONS.items() if bits & bit and name != "idle"]


def _processes(pynvml, handle) -> list[GpuProcess]:
    found: dict[int, GpuProcess] = {}
    for reader in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for entry in _optional(lambda read=reader: getattr(pynvml, read)(handle)) or []:
            used = getattr(entry, "usedGpuMemory", None)
            if not isinstance(used, int) or used < 0 or used >= 2**63:
                used = None  # NVML reports "not available" as a sentinel under some drivers and in containers
            name = _process_name(pynvml, entry.pid)
            previous = found.get(entry.pid)
            if previous is None or (previous.used_bytes or 0) < (used or 0):
                found[entry.pid] = GpuProcess(entry.pid, name, used)
    return sorted(found.values(), key=lambda p: -(p.used_bytes or 0))


def _process_name(pynvml, pid: int) -> str:
    name = _optional(lambda: pynvml.nvmlSystemGetProcessName(pid))
    if name:
        return _text(name).rsplit("/", 1)[-1]
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return f"process {pid}"


def _nvml_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if "LibraryNotFound" in name:
        return "the NVIDIA driver library (NVML) was not found"
    if "DriverNotLoaded" in name:
        return "the NVIDIA driver is not loaded"
    if "NoPermission" in name:
        return "no permission to query the GPU"
    return str(exc) or name


def _cuda_version(value) -> str | None:
    return f"{value // 1000}.{value % 1000 // 10}" if isinstance(value, int) and value > 0 else None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _optional(read):
    """A reading some cards or drivers do not support (power on laptops, processes in containers) is missing."""
    try:
        return read()
    except Exception:
        return None


def describe(result: Probe) -> str:
    """The probe as lines for a terminal."""
    if not result.available:
        return result.reason[:1].upper() + result.reason[1:] + " — the demo model can train on the CPU, slowly."
    lines = [f"NVIDIA driver {result.driver or '?'} (CUDA {result.cuda_driver or '?'})"]
    for gpu in result.gpus:
        lines.append(f"GPU {gpu.index}: {gpu.name} · compute capability {gpu.compute_capability or '?'}"
                     f" · bf16 {'yes' if gpu.bf16 else 'no'}")
        lines.append(f"  memory: {gib(gpu.free_bytes)} free of {gib(gpu.total_bytes)} "
                     f"({gib(gpu.used_bytes)} used)")
        extras = []
        if gpu.utilization_pct is not None:
            extras.append(f"utilisation {gpu.utilization_pct}%")
        if gpu.temperature_c is not None:
            extras.append(f"{gpu.temperature_c} °C")
        if gpu.power_w is not None:
            limit = f" of {gpu.power_limit_w:.0f} W" if gpu.power_limit_w else ""
            extras.append(f"power {gpu.power_w:.0f} W{limit}")
        if gpu.sm_clock_mhz is not None:
            extras.append(f"SM clock {gpu.sm_clock_mhz}/{gpu.sm_clock_max_mhz or '?'} MHz")
        if extras:
            lines.append("  " + " · ".join(extras))
        if gpu.throttle_reasons:
            lines.append("  throttled: " + ", ".join(gpu.throttle_reasons))
        for process in gpu.processes:
            lines.append(f"  another program is using {gib(process.used_bytes)}: {process.name} "
                         f"(pid {process.pid})")
    return "\n".join(lines)


class EnergyMeter:
    """The energy the training GPUs draw: NVML's power readings of the GPUs CUDA sees (CUDA_VISIBLE_DEVICES
    honoured), integrated over time by trapezoids. ``watt_hours`` stays None where no reading exists (the CPU)."""

    def __init__(self, read=None):
        self._read = read or self._power_now
        self._last: tuple[float, float] | None = None  # (time, watts)
        self.watt_hours: float | None = None

    def sample(self, now: float) -> float | None:
        watts = self._read()
        if watts is None:
            return self.watt_hours
        if self._last is not None:
            then, before = self._last
            self.watt_hours = (self.watt_hours or 0.0) + (before + watts) / 2 * max(0.0, now - then) / 3600
        elif self.watt_hours is None:
            self.watt_hours = 0.0
        self._last = (now, watts)
        return self.watt_hours

    @staticmethod
    def _power_now() -> float | None:
        import os

        result = probe()
        if not result.available:
            return None
        readings = [g.power_w for g in cuda_devices(result, os.environ.get("CUDA_VISIBLE_DEVICES"))]
        return sum(readings) if readings and all(r is not None for r in readings) else None
