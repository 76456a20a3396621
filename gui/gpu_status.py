"""A quick look at the NVIDIA GPU through NVML, for the Train page's memory panel and live telemetry.

Hardware is read only here, through pynvml; without a driver or GPU the answer is None, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuReading:
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    utilization_pct: int | None
    temperature_c: int | None
    power_w: float | None
    driver: str


def read(index: int = 0) -> GpuReading | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library, no GPU: all mean "no NVIDIA GPU" to the user
        return None
    try:
        if pynvml.nvmlDeviceGetCount() <= index:
            return None
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        return GpuReading(
            name=name.decode() if isinstance(name, bytes) else name,
            total_bytes=int(memory.total), free_bytes=int(memory.free), used_bytes=int(memory.used),
            utilization_pct=_optional(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            temperature_c=_optional(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
            power_w=_optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),
            driver=str(_optional(pynvml.nvmlSystemGetDriverVersion) or ""),
        )
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _optional(read_value):
    """A reading some cards do not support (power on laptops, for example) is simply missing."""
    try:
        return read_value()
    except Exception:
        return None
