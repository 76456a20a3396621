"""Time, peak memory and verified agreement of each export format, on the demo model and on a random-weight Llama
3.2 1B shape.

    python bench/export_bench.py [--model demo|llama-3.2-1b] [--formats merged gguf:f16 gguf:q8_0 ollama:q4_k_m]

A short fine-tune makes the run (QLoRA, a few steps on the bundled sample), then each format is exported by the
real engine in its own process (``llamadesk-engine export``), so the peak resident memory is that export's alone
(``os.wait4``). Prints one row per format with how closely it answers like the fine-tune (llama.cpp's for a GGUF:
clear positions, the share of them with the same top token, the KL divergence; the figures the verification's
ceilings in engine/heavy/export/verify.py are set from) and the stages' seconds from the verification report.
Everything lives in a temporary LlamaDesk home (``--home`` to keep it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FORMATS = ("merged", "gguf:f16", "gguf:q8_0", "ollama:q4_k_m")


def _prepare(home: Path, model: str, steps: int) -> Path:
    """A finished QLoRA run on the model; returns its folder."""
    os.environ["LLAMADESK_HOME"] = str(home)
    import resources
    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.heavy.models import demo_model
    from engine.light import config as run_config
    from engine.light import demo_settings

    run = home / "runs" / "bench"
    if (run / "adapter").is_dir():
        return run
    demo = demo_model.ensure_demo_model(progress=lambda message: None)
    if model == "demo":
        config = demo_settings.demo_config(**{"run_name": "bench", "train.max_steps": steps})
    else:
        from engine.heavy.models.random_weights import write_model
        from engine.light import catalog

        folder = home / "models" / f"random-{model}"
        if not (folder / "config.json").is_file():
            print(f"writing a random-weight {model} …", flush=True)
            write_model(folder, demo, dtype="bfloat16", **catalog.find(model).llama_config_kwargs())
        config = run_config.from_mapping({"model": str(folder), "dataset": str(resources.path(demo_settings.SAMPLE)),
                                          "run_name": "bench", "quantization": "nf4",
                                          "data": {"cutoff": 128, "validation_share": 0.05},
                                          "train": {"max_steps": steps, "micro_batch": 1}})
    print(f"training {steps} steps on {model} …", flush=True)
    started = time.monotonic()
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    print(f"  {time.monotonic() - started:.0f} s", flush=True)
    return run


def _export(home: Path, run: Path, choice: str) -> dict:
    fmt, _, quant = choice.partition(":")
    out = home / "exports" / choice.replace(":", "-")
    command = [sys.executable, "-m", "engine", "export", str(run), "--format", fmt, "--out", str(out), "--json"]
    if quant:
        command += ["--quant", quant]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO,
                               env=dict(os.environ, LLAMADESK_HOME=str(home)))
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    from engine.light import protocol

    messages = protocol.Reader().feed(output)
    done = [m for m in messages if isinstance(m, protocol.ExportFinished)]
    errors = [m.message for m in messages if isinstance(m, protocol.Error)]
    report = done[0].verification if done else {}
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.exists() else 0
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    answers = report.get("gguf", {}).get("answers") or report.get("merged") or {}
    agreement = {key: answers.get(key) for key in ("clear_positions", "clear_top1_agreement", "kl_divergence")}
    return {"format": choice, "ok": bool(done) and done[0].passed, "seconds": round(seconds, 1), **agreement,
            "peak_rss_gib": round(peak / 2**30, 2), "size_mib": round(size / 2**20, 1),
            "stages": report.get("seconds", {}), "exit": os.waitstatus_to_exitcode(status),
            "error": errors[0] if errors else ("" if done else "the engine ended without a report")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="demo, or a catalog key for a random-weight shape")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: demo 10, others 2)")
    parser.add_argument("--home", type=Path, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="llamadesk-export-bench-"))
    run = _prepare(home, args.model, args.steps or (10 if args.model == "demo" else 2))
    print(f"{'format':<16}{'ok':<5}{'seconds':>9}{'peak RSS':>11}{'size':>11}{'clear':>7}{'same top':>10}{'KL':>10}"
          "  stages (s)")
    rows = []
    for choice in args.formats:
        row = _export(home, run, choice)
        rows.append(row)
        stages = ", ".join(f"{k} {v}" for k, v in row["stages"].items())
        print(f"{row['format']:<16}{'yes' if row['ok'] else 'NO':<5}{row['seconds']:>9}"
              f"{row['peak_rss_gib']:>8} GiB{row['size_mib']:>7} MiB{row['clear_positions'] or 0:>7}"
              f"{row['clear_top1_agreement'] or 0:>10.3f}{row['kl_divergence'] or 0:>10.5f}  {stages or row['error']}",
              flush=True)
    print(json.dumps({"model": args.model, "cpus": os.cpu_count(), "rows": rows}))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
