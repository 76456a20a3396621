"""Longest trainable context at micro-batch 1: the LlamaDesk engine against the plain Hugging Face baseline, each
within the same memory budget.

Each side runs in its own process, loads the model once and, for each length L it tries, trains one optimizer step
on one sequence of L tokens, every token labelled (the step creates the optimizer's states: under 0.1 GiB for LoRA
on 8B). It doubles L from --start while it fits, then halves the gap down to --granularity. On a GPU the budget is
enforced: the process's share of the card is capped (``torch.cuda.set_per_process_memory_fraction``) at the budget
less what the CUDA context already holds, so a length fits when its step finishes without running out of memory. On
the CPU a length fits when the process's peak resident memory during its step (VmHWM, reset before each length)
stays within the budget. The search stops at --time-limit per side and then reports the bracket it reached.

    python bench/longest_context.py --model llama-3.1-8b --budget-gib 24 --tokenizer .gpu-tokenizer  # GPU
    python bench/longest_context.py --budget-gib 3 --start 512  # the demo model on the CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import vs_baseline

GIB = 2**30
# glibc hands large freed blocks back to the system only above its mmap threshold, which otherwise rises as big blocks
# are freed. Fixed, the resident set follows what is live, so one length's peak does not carry over into the next
# length's reading on the CPU.
MEASURED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


class Budget:
    """Peak memory against the budget: torch's reserved peak plus the CUDA context on a GPU, peak RSS on the CPU."""

    def __init__(self, budget_bytes: int):
        import torch

        self.budget = budget_bytes
        self.cuda = torch.cuda.is_available()
        self.outside = 0
        if self.cuda:
            torch.zeros(1, device="cuda")  # the context exists from here on
            free, total = torch.cuda.mem_get_info()
            self.outside = total - free - torch.cuda.memory_reserved()
            cap = budget_bytes - self.outside
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total))

    def reset(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def peak(self) -> int:
        import torch

        if self.cuda:
            return torch.cuda.max_memory_reserved() + self.outside
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def engine_trainer_factory(folder: Path, overrides: list[str]):
    """A function training one engine step on one sequence of a given length, the model loaded once."""
    import datasets

    from engine.heavy import device as devices
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.heavy.train_setup import build_trainer, load_model, tokenizer_for
    from engine.light import config as run_config
    from engine.light.run_folder import RunFolder

    os.environ["LLAMADESK_HOME"] = tempfile.mkdtemp(prefix="llamadesk-longest-")  # its probe runs, then dropped
    config = run_config.from_mapping(vs_baseline.engine_settings(folder, folder / "unused.jsonl", seq=1024,
                                                                 micro_batch=1, steps=1, overrides=overrides))
    device = devices.resolve_device(config.device)
    dtype = devices.compute_dtype(config.compute_dtype, device)
    tokenizer = tokenizer_for(folder)
    model = load_model(folder, config, device, dtype)

    def run(ids: list[int]) -> None:
        n = len(ids)
        rows = datasets.Dataset.from_dict({"input_ids": [ids], "labels": [ids], "position_ids": [list(range(n))]})
        trainer, callback = build_trainer(model, tokenizer, rows, None, config, RunFolder.create(f"probe-{n}"),
                                          Emitter(None), Control(), device, dtype)
        try:
            trainer.train()
        finally:
            callback.close()

    return run, len(tokenizer)


def baseline_trainer_factory(folder: Path, overrides: list[str]):
    import datasets

    model, tokenizer = vs_baseline.load_baseline(folder)

    def run(ids: list[int]) -> None:
        rows = datasets.Dataset.from_dict({"input_ids": [ids], "attention_mask": [[1] * len(ids)]})
        vs_baseline.baseline_trainer(model, tokenizer, rows, micro_batch=1, steps=1).train()

    return run, len(tokenizer)


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(exc)


def search(args) -> dict:
    import torch

    budget = Budget(int(args.budget_gib * GIB))
    factory = engine_trainer_factory if args.side == "engine" else baseline_trainer_factory
    train_steps, vocab = factory(Path(args.model_dir), args.engine_set)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(10, vocab, (args.max_seq,), generator=generator).tolist()
    probes: list[dict] = []
    deadline = time.monotonic() + args.time_limit

    def fits(length: int) -> bool:
        gc.collect()
        if budget.cuda:
            torch.cuda.empty_cache()
        budget.reset()
        started = time.monotonic()
        try:
            train_steps(tokens[:length])
            ok = True
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            ok = False
        peak = budget.peak()
        ok = ok and peak <= budget.budget
        probes.append({"seq": length, "fits": ok, "peak_bytes": peak, "seconds": round(time.monotonic() - started, 1)})
        print(f"{args.side}: {length} tokens {'fits' if ok else 'does not fit'} (peak {peak / GIB:.2f} GiB, "
              f"{probes[-1]['seconds']} s)", file=sys.stderr, flush=True)
        return ok

    def time_left() -> bool:  # room for one more probe, guessing it takes twice the last one
        return not probes or time.monotonic() + 2 * probes[-1]["seconds"] < deadline

    longest, failed = 0, None
    length = args.start
    while failed is None and length <= args.max_seq and time_left():
        if fits(length):
            longest, length = length, length * 2
        else:
            failed = length
    while failed is not None and failed - longest > args.granularity and time_left():
        middle = (longest + failed) // 2 // args.granularity * args.granularity
        if middle <= longest:
            break
        if fits(middle):
            longest = middle
        else:
            failed = middle
    return {"longest": longest, "first_fail": failed, "budget_bytes": budget.budget,
            "outside_allocator_bytes": budget.outside, "probes": probes,
            "peak_kind": "cuda reserved + context" if budget.cuda else "peak RSS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--start", type=int, default=2048, help="first length tried")
    parser.add_argument("--granularity", type=int, default=1024)
    parser.add_argument("--max-seq", type=int, default=131072)
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds of searching per side")
    parser.add_argument("--engine-set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--tokenizer", help="a folder with the demo tokenizer's files (catalog shapes on a GPU "
                        "machine without the demo model)")
    parser.add_argument("--only", choices=("engine", "baseline"))
    parser.add_argument("--models-dir", help="keep the random-weight models here and reuse them across runs")
    parser.add_argument("--side", choices=("engine", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print("RESULT " + json.dumps(search(args)), flush=True)
        return

    work = Path(tempfile.mkdtemp(prefix="llamadesk-longest-"))
    folder = vs_baseline.model_folder(args.model, Path(args.models_dir) if args.models_dir else work, args.tokenizer)
    results = {}
    for side in [args.only] if args.only else ["baseline", "engine"]:
        command = [sys.executable, __file__, "--side", side, "--model-dir", str(folder)]
        for flag in ("budget_gib", "start", "granularity", "max_seq", "time_limit"):
            command += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
        command += [arg for item in args.engine_set for arg in ("--engine-set", item)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True,  # progress goes to stderr
                              env={**os.environ, **MEASURED_MALLOC})
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise SystemExit(f"{side} failed (exit {done.returncode})")
        results[side] = json.loads(line.removeprefix("RESULT "))
    print(f"model {args.model}, micro-batch 1, budget {args.budget_gib:g} GiB "
          f"({next(iter(results.values()))['peak_kind']}), granularity {args.granularity}"
          + (f", engine options {' '.join(args.engine_set)}" if args.engine_set else ""))
    for side, r in results.items():
        bracket = (f"< {r['first_fail']:,}" if r["first_fail"]
                   else f"(no failure up to {args.max_seq:,} or the time limit)")
        print(f"{side:10} longest {r['longest']:>8,} tokens {bracket}; {len(r['probes'])} lengths tried")
    if len(results) == 2 and results["baseline"]["longest"]:
        print(f"engine/baseline: longest context {results['engine']['longest'] / results['baseline']['longest']:.2f}x")
    print("JSON " + json.dumps({"model": args.model, "budget_gib": args.budget_gib, "engine_set": args.engine_set,
                                **results}))


if __name__ == "__main__":
    main()
