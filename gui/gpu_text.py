"""The Train page's GPU lines, in words: which GPU the run trains on with its free memory and driver, and its live
readings (memory, utilisation, temperature, power) while a run trains."""

from __future__ import annotations

from engine.light import gpu
from engine.light.units import gib


def summary(probe: gpu.Probe) -> str:
    card = gpu.training_gpu(probe) if probe.available else None
    if card is None:
        return ("No NVIDIA GPU found — the demo model can train on the CPU, slowly." if not probe.available else
                "CUDA_VISIBLE_DEVICES hides every GPU from the engine: it will train on the CPU.")
    capability = f", compute capability {card.compute_capability}" if card.compute_capability else ""
    others = card.other_processes_bytes()
    busy = f"\nOther programs are using {gib(others)} of it." if others else ""
    return (f"{card.name}: {gib(card.free_bytes)} free of {gib(card.total_bytes)} (driver {probe.driver}"
            f"{capability}){busy}")


def telemetry(probe: gpu.Probe) -> str:
    card = gpu.training_gpu(probe) if probe.available else None
    if card is None:
        return ""
    parts = [f"GPU memory {card.used_bytes / 2**30:.1f} / {gib(card.total_bytes)}"]
    if card.utilization_pct is not None:
        parts.append(f"utilisation {card.utilization_pct}%")
    if card.temperature_c is not None:
        parts.append(f"{card.temperature_c} °C")
    if card.power_w is not None:
        parts.append(f"{card.power_w:.0f} W")
    return " · ".join(parts)

