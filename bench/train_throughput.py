"""CPU (or GPU) training throughput of the demo fine-tune: 4-bit QLoRA on the demo model and the bundled sample.

Prints tokens/s (real, non-padding tokens) and seconds per optimizer step, measured by the engine itself over a
short run. Usage: python bench/train_throughput.py [--steps 12] [--quantization nf4|none]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--quantization", default="nf4", choices=("nf4", "none"))
    args = parser.parse_args()
    os.environ.setdefault("LLAMADESK_HOME", tempfile.mkdtemp(prefix="llamadesk-bench-"))

    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter
    from engine.light import demo_settings, run_folder

    config = demo_settings.demo_config(**{"train.max_steps": args.steps, "train.logging_steps": 1,
                                 "quantization": args.quantization, "run_name": f"bench-{int(time.time())}"})
    started = time.monotonic()
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    wall = time.monotonic() - started
    from engine.light import paths

    metrics = [m for m in run_folder.read_jsonl(paths.runs_dir() / config.run_name / "metrics.jsonl") if "loss" in m]
    steady = metrics[2:]  # the first steps include one-time warm-up
    speed = statistics.median(m["tokens_per_s"] for m in steady)
    per_step = (steady[-1]["elapsed_s"] - metrics[1]["elapsed_s"]) / (len(steady))
    device = describe()
    print(f"device: {device['kind']} ({device['name']}), quantization: {args.quantization}, "
          f"micro-batch {config.train.micro_batch} x grad-accum {config.train.grad_accum}")
    print(f"steps: {len(metrics)}, median tokens/s (steady): {speed:,.0f}, seconds/step: {per_step:.2f}")
    print(f"whole run incl. model load and data: {wall:.0f} s")


if __name__ == "__main__":
    main()
