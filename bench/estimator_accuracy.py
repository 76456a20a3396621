"""Estimator accuracy on a real CUDA GPU: measured peak memory against the estimate for a matrix of runs.

For each configuration a random-weight model with the exact catalog shape (no download) trains 3 steps through the
real engine in its own process; the peak is read from the engine's `memory` events (torch reserved peak) and from
NVML's per-process usage, and compared with `llamadesk-engine estimate`. Goal: within 10% at every point.

    python bench/estimator_accuracy.py --tokenizer DIR [--models llama-3.2-1b,llama-3.1-8b] [--quick]
    python bench/estimator_accuracy.py --tokenizer DIR --dry-run     # estimates only (no GPU needed)

Results: stdout and bench/results/estimator_accuracy-<date>-<gpu>.json (and $OUT when set).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def matrix(quick: bool) -> list[dict]:
    """16 points (sequence, micro-batch, rank, checkpointing), or 4 that still vary each of them."""
    if quick:
        picked = [(512, 1, 16, True), (2048, 1, 64, False), (512, 4, 64, True), (2048, 4, 16, False)]
    else:
        picked = list(itertools.product((512, 2048), (1, 4), (16, 64), (True, False)))
    return [dict(seq=s, batch=b, rank=r, ckpt=c) for s, b, r, c in picked]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True, type=Path)
    parser.add_argument("--models", default="llama-3.2-1b,llama-3.2-3b,llama-3.1-8b")
    parser.add_argument("--quick", action="store_true", help="4 configurations per model instead of 16")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()

    from engine.heavy.models.random_weights import write_model
    from engine.light import catalog, estimator, fit, gpu, protocol
    from engine.light import config as run_config

    work = Path(tempfile.mkdtemp(prefix="llamadesk-estimator-"))
    home = work / "home"
    data = work / "data.jsonl"
    rows = json.loads((REPO / "resources/sample/harbor_lights.json").read_text())
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 40))
    probe = gpu.probe()
    if not args.dry_run and not probe.available:
        raise SystemExit("no CUDA GPU: " + probe.reason)
    results = []
    for key in args.models.split(","):
        spec = catalog.find(key)
        folder = None
        for point in matrix(args.quick if key == "llama-3.2-1b" else True):
            config = run_config.from_mapping({
                "model": key, "dataset": str(data), "run_name": "", "device": "cuda",
                "data": {"cutoff": point["seq"], "packing": True, "validation_share": 0.0},
                "lora": {"rank": point["rank"], "alpha": 2 * point["rank"]},
                "train": {"max_steps": 3, "micro_batch": point["batch"], "grad_accum": 1, "logging_steps": 1,
                          "save_steps": 10_000, "gradient_checkpointing": point["ckpt"]},
            })
            estimate = estimator.estimate(spec, fit.settings_for(config)).total
            row = {"model": key, **point, "estimate_bytes": estimate}
            if not args.dry_run:
                if folder is None:
                    folder = write_model(work / key, args.tokenizer, dtype="bfloat16", **spec.llama_config_kwargs())
                config_file = work / "run.yaml"
                run_config.save(run_config.from_mapping({**config.to_dict(), "model": str(folder)}), config_file)
                row.update(_measure(config_file, home, protocol, gpu))
                if row.get("reserved_peak_bytes"):
                    row["error_pct"] = round(100 * (estimate - row["reserved_peak_bytes"])
                                             / row["reserved_peak_bytes"], 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    device = "dry-run" if args.dry_run else probe.gpus[0].name
    summary = {"date": date.today().isoformat(), "device": device, "results": results}
    errors = [abs(r["error_pct"]) for r in results if "error_pct" in r]
    if errors:
        summary["max_abs_error_pct"] = max(errors)
        summary["within_10pct"] = sum(e <= 10 for e in errors)
        print(f"within 10%: {summary['within_10pct']} of {len(errors)}; worst {max(errors):.1f}%")
    if not args.dry_run:
        name = f"estimator_accuracy-{summary['date']}-{re.sub(r'[^A-Za-z0-9]+', '-', device).strip('-')}.json"
        (REPO / "bench/results").mkdir(exist_ok=True)
        (REPO / "bench/results" / name).write_text(json.dumps(summary, indent=2) + "\n")
        if os.environ.get("OUT"):
            Path(os.environ["OUT"], name).write_text(json.dumps(summary, indent=2) + "\n")


def _measure(config_file: Path, home: Path, protocol, gpu) -> dict:
    """Run the engine on one config; the torch peak from its memory events, the NVML peak by polling."""
    env = dict(os.environ, LLAMADESK_HOME=str(home), PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--json", str(config_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    nvml_peak = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            for card in gpu.probe().gpus:
                for process in card.processes:
                    if process.pid == proc.pid and process.used_bytes:
                        nvml_peak[0] = max(nvml_peak[0], process.used_bytes)
            time.sleep(0.2)

    threading.Thread(target=poll, daemon=True).start()
    reserved = allocated = 0
    error = ""
    reader = protocol.Reader()
    for line in proc.stdout:
        for msg in reader.feed(line):
            if isinstance(msg, protocol.Memory):
                reserved = max(reserved, msg.reserved_peak_bytes)
                allocated = max(allocated, msg.allocated_peak_bytes)
            if isinstance(msg, protocol.Error):
                error = f"{msg.kind}: {msg.message}"
    proc.wait()
    done.set()
    return {"reserved_peak_bytes": reserved, "allocated_peak_bytes": allocated,
            "nvml_peak_bytes": nvml_peak[0] or None, "error": error}


if __name__ == "__main__":
    main()
