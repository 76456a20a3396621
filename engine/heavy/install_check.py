"""``llamadesk-engine selftest``: is this engine environment complete and working on this machine?

Imports the training stack, reports versions and the device, and runs one 4-bit (nf4) layer forward and backward
through bitsandbytes and PEFT-style LoRA on the device that training would use. The first-run setup runs it after
installing the engine environment; its JSON is what the setup records.
"""

from __future__ import annotations

import importlib.metadata
import time

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "safetensors")


def run() -> dict:
    started = time.monotonic()
    report: dict = {"ok": False, "versions": {}, "device": None, "problems": []}
    for name in PACKAGES:
        try:
            report["versions"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            report["problems"].append(f"{name} is not installed")
    if report["problems"]:
        return report
    try:
        import bitsandbytes as bnb
        import torch

        from engine.heavy import device as devices

        device = devices.resolve_device("auto")
        report["device"] = devices.describe()
        torch.manual_seed(0)
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
        layer = layer.to(device)  # quantizes the weights on the way
        lora_a = torch.nn.Parameter(torch.randn(64, 8, device=device) * 0.01)
        lora_b = torch.nn.Parameter(torch.zeros(8, 64, device=device))
        x = torch.randn(4, 64, device=device)
        loss = (layer(x) + x @ lora_a @ lora_b).pow(2).mean()
        loss.backward()
        if not torch.isfinite(loss) or lora_b.grad is None:
            report["problems"].append("the 4-bit layer gave no finite loss or gradient")
    except Exception as exc:  # the report is the point: say what failed rather than crash
        report["problems"].append(f"{type(exc).__name__}: {exc}")
    report["ok"] = not report["problems"]
    report["seconds"] = round(time.monotonic() - started, 2)
    return report
