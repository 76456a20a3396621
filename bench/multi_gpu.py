"""Several GPUs for real: the same QLoRA run with DDP and with FSDP (``distributed.strategy``) on every visible GPU,
through the engine's own launcher (``llamadesk-engine train`` with ``distributed.gpus``): seconds per step, tokens/s,
the largest GPU's peak memory and the final loss, next to the estimator's per-GPU figure; and what each saved: the
files of the mid-run checkpoint (FSDP's are sharded, one part per rank) and the adapter's tensors (whole with either).
Needs two or more CUDA GPUs; ``--cpu-smoke`` runs the DDP path on two CPU processes with a tiny model to check the
script itself.

    python bench/multi_gpu.py --tokenizer .gpu-tokenizer --model llama-3.1-8b
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True, type=Path)
    parser.add_argument("--model", default="llama-3.1-8b", help="a catalog shape, with random weights")
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--strategies", default="ddp,fsdp")
    parser.add_argument("--cpu-smoke", action="store_true")
    args = parser.parse_args()

    import torch

    from engine.heavy.models.random_weights import write_model
    from engine.light import catalog, estimator, protocol
    from engine.light import config as run_config

    gpus = 2 if args.cpu_smoke else torch.cuda.device_count()
    if gpus < 2:
        raise SystemExit(f"{gpus} CUDA GPU(s): this bench needs two or more (or --cpu-smoke)")
    spec = catalog.find(args.model)
    work = Path(tempfile.mkdtemp(prefix="multi-gpu-"))
    model = write_model(work / "model", args.tokenizer, dtype="float32" if args.cpu_smoke else "bfloat16",
                        **({} if args.cpu_smoke else spec.llama_config_kwargs()))
    data = work / "data.jsonl"
    from gpu_check import _write_dataset

    _write_dataset(data)
    results = []
    for strategy in args.strategies.split(",") if not args.cpu_smoke else ["ddp"]:
        values = {"model": str(model), "dataset": str(data), "run_name": f"multi-{strategy}",
                  "device": "cpu" if args.cpu_smoke else "cuda",
                  "data": {"cutoff": args.seq, "packing": True, "validation_share": 0.0},
                  "train": {"max_steps": args.steps, "micro_batch": args.micro_batch, "grad_accum": 1,
                            "save_steps": max(1, args.steps // 2), "compare_base": False},
                  "distributed": {"strategy": strategy, "gpus": [] if args.cpu_smoke else
                                  [str(i) for i in range(gpus)], "cpu_processes": 2}}
        config = run_config.from_mapping(values)
        settings = work / f"{strategy}.yaml"
        run_config.save(config, settings)
        env = dict(os.environ, LLAMADESK_HOME=str(work / "home"))
        done = subprocess.run([sys.executable, "-m", "engine", "train", str(settings), "--json"],
                              capture_output=True, text=True, env=env, timeout=3600)
        messages = protocol.Reader().feed(done.stdout.encode())
        progress = [m for m in messages if isinstance(m, protocol.Progress)]
        memory = [m for m in messages if isinstance(m, protocol.Memory)]
        errors = [f"{m.kind}: {m.message}" for m in messages if isinstance(m, protocol.Error)]
        steady = progress[2:] or progress
        estimate = None if args.cpu_smoke else estimator.estimate(spec, config,
                                                                  estimator.target_for(config, strategy)).total
        results.append({
            "strategy": strategy, "gpus": gpus, "exit_code": done.returncode, "errors": errors,
            "steps": len(progress),
            "seconds_per_step": ((steady[-1].elapsed_s - progress[0].elapsed_s) / max(1, len(steady) - 1)
                                 if len(steady) > 1 else None),
            "tokens_per_s_median": sorted(m.tokens_per_s or 0 for m in steady)[len(steady) // 2] if steady else None,
            "peak_allocated_bytes_largest_gpu": max((m.allocated_peak_bytes for m in memory), default=None),
            "estimate_per_gpu_bytes": estimate,
            "final_loss": progress[-1].loss if progress else None,
            **_saved(work / "home" / "runs" / f"multi-{strategy}"),
            "stderr_tail": done.stderr[-1500:] if done.returncode else "",
        })
    device = "cpu" if args.cpu_smoke else torch.cuda.get_device_name(0)
    result = {"date": date.today().isoformat(), "device": device, "model_shape": args.model if not args.cpu_smoke
              else "tiny", "seq": args.seq, "micro_batch": args.micro_batch, "runs": results,
              "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "python": platform.python_version()}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.cpu_smoke:
        return
    from gpu_check import save_result  # bench/ is this script's folder on sys.path

    save_result(f"multi_gpu-{result['date']}-{gpus}x-{device}", text)


def _saved(run: Path) -> dict:
    """The first checkpoint's files (folders with a trailing slash) and the adapter's tensor count."""
    checkpoints = sorted((run / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    first = checkpoints[0] if checkpoints else None
    adapter = run / "adapter" / "adapter_model.safetensors"
    tensors = None
    if adapter.is_file():
        from safetensors import safe_open

        with safe_open(str(adapter), framework="pt") as opened:
            tensors = len(list(opened.keys()))
    return {"checkpoint": first.name if first else None,
            "checkpoint_files": sorted(p.name + ("/" if p.is_dir() else "") for p in first.iterdir()) if first else [],
            "adapter_tensors": tensors}


if __name__ == "__main__":
    main()
