"""GPU check of the CUDA training path: 4-bit nf4 + paged 8-bit AdamW + bf16 through the real engine.

Builds a random-weight model with the exact shape of a catalog entry (default Llama 3.2 1B; no download), trains
a few steps on packed sequences of the bundled sample, and reports tokens/s and peak memory. Results go to stdout
and to bench/results/gpu_check-<date>-<gpu>.txt (and $OUT when set).

    python bench/gpu_check.py --tokenizer DIR [--model llama-3.2-1b] [--seq 1024] [--steps 10]
    python bench/gpu_check.py --cpu-smoke --tokenizer DIR      # exercise this script on the CPU with a tiny model

DIR holds tokenizer files (tokenizer.json, tokenizer_config.json): the demo model's folder, or a copy of its
tokenizer files carried to the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True, type=Path)
    parser.add_argument("--model", default="llama-3.2-1b")
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cpu-smoke", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llamadesk-gpu-check-"))
    os.environ["LLAMADESK_HOME"] = str(work / "home")

    import torch

    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.heavy.models.random_weights import write_model
    from engine.light import catalog, paths, protocol, run_folder
    from engine.light import config as run_config

    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: run this on a machine with an NVIDIA GPU (or use --cpu-smoke)")
    spec = catalog.find(args.model)
    shape = {} if args.cpu_smoke else spec.llama_config_kwargs()
    started = time.monotonic()
    model_dir = write_model(work / "model", args.tokenizer, dtype="float32" if args.cpu_smoke else "bfloat16",
                            **shape)
    build_s = time.monotonic() - started
    data = work / "data.jsonl"
    _write_dataset(data)

    class Recorder(Emitter):
        def __init__(self):
            super().__init__(None)
            self.memory: list[protocol.Memory] = []
            self.errors: list[protocol.Error] = []

        def emit(self, msg):
            super().emit(msg)
            if isinstance(msg, protocol.Memory):
                self.memory.append(msg)
            if isinstance(msg, protocol.Error):
                self.errors.append(msg)

    config = run_config.from_mapping({
        "model": str(model_dir), "dataset": str(data), "run_name": "gpu-check",
        "device": "cpu" if args.cpu_smoke else "cuda", "quantization": "nf4",
        "data": {"cutoff": args.seq, "packing": True, "validation_share": 0.0},
        "train": {"max_steps": args.steps, "micro_batch": args.micro_batch, "grad_accum": 1, "logging_steps": 1,
                  "save_steps": 10_000, "gradient_checkpointing": True},
    })
    recorder = Recorder()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    code = train.run(config, emitter=recorder, control=Control())
    if code != 0:
        raise SystemExit(f"training failed: {recorder.errors}")
    metrics = [m for m in run_folder.read_jsonl(paths.runs_dir() / "gpu-check" / "metrics.jsonl") if "loss" in m]
    steady = metrics[2:] or metrics
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu_smoke else "cpu"
    result = {
        "date": date.today().isoformat(),
        "device": device,
        "model_shape": spec.key if not args.cpu_smoke else "tiny",
        "params": spec.param_count if not args.cpu_smoke else None,
        "seq": args.seq, "micro_batch": args.micro_batch, "steps": len(metrics),
        "optimizer": "paged_adamw_8bit" if not args.cpu_smoke else "adamw_torch",
        "tokens_per_s_median": statistics.median(m["tokens_per_s"] for m in steady),
        "seconds_per_step": (steady[-1]["elapsed_s"] - metrics[0]["elapsed_s"]) / max(1, len(steady)),
        "peak_allocated_bytes": max((m.allocated_peak_bytes for m in recorder.memory), default=None),
        "peak_reserved_bytes": max((m.reserved_peak_bytes for m in recorder.memory), default=None),
        "final_loss": metrics[-1]["loss"],
        "model_build_s": round(build_s, 1),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.cpu_smoke:
        return  # a check of this script, not a GPU result
    save_result(f"gpu_check-{result['date']}-{device}", text)


def save_result(stem: str, text: str) -> Path:
    """A GPU result under bench/results/ (and $OUT, which a lent device machine sends back), named for the bench,
    the date and the GPU."""
    name = re.sub(r"[^A-Za-z0-9.]+", "-", stem).strip("-") + ".json"
    target = Path(__file__).parent / "results"
    target.mkdir(exist_ok=True)
    (target / name).write_text(text + "\n")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], name).write_text(text + "\n")
    return target / name


def _write_dataset(path: Path) -> None:
    import resources

    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 20), encoding="utf-8")


if __name__ == "__main__":
    main()
