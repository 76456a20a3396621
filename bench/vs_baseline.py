"""QLoRA throughput and peak memory: the LlamaDesk engine against a plain Hugging Face baseline, same model and data.

The baseline is the stack most tools use with tutorial defaults: transformers Trainer + PEFT (prepare_model_for_kbit_
training, LoRA on every linear layer) + bitsandbytes nf4, examples padded to the longest in each batch, no packing,
the model's standard cross-entropy, gradient checkpointing on. Each side runs in its own process launch. Printed per
side: real (non-padding) tokens/s, seconds per optimizer step, peak memory (torch's reserved peak on CUDA, peak RSS on
the CPU), and the engine/baseline ratios.

    python bench/vs_baseline.py                                  # the demo model on this machine (CPU or GPU)
    python bench/vs_baseline.py --model llama-3.1-8b --seq 2048  # a catalog shape with random weights (GPU)
    python bench/vs_baseline.py --engine-set data.packing=true   # an engine option switched on

Data: the bundled alpaca-style sample, rows joined into examples whose lengths spread from short to the cutoff
(log-uniform), as real instruction sets do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WARMUP_STEPS = 2


def make_dataset(path: Path, tokenizer, rows: int, seq: int, seed: int = 0) -> None:
    """Alpaca rows from the sample; each output joins sample answers until a length drawn log-uniformly between
    32 tokens and the cutoff."""
    import resources

    sample = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(rows):
            target = int(math.exp(rng.uniform(math.log(32), math.log(seq * 0.95))))
            first = rng.choice(sample)
            answer, length = [first["output"]], len(tokenizer(first["output"])["input_ids"])
            while length < target:
                extra = rng.choice(sample)["output"]
                answer.append(extra)
                length += len(tokenizer(extra)["input_ids"])
            out.write(json.dumps({"instruction": first["instruction"], "input": first.get("input", ""),
                                  "output": " ".join(answer)}) + "\n")


def model_folder(name: str, work: Path, tokenizer: str | None = None) -> Path:
    from engine.heavy.models import demo_model

    if tokenizer and name != "demo":
        demo_dir = Path(tokenizer)  # the demo model's tokenizer files only (a GPU machine without the model)
    else:
        demo_dir = demo_model.ensure_demo_model(progress=lambda message: None)
    if name == "demo":
        return demo_dir
    from engine.heavy.models.random_weights import write_model
    from engine.light import catalog

    spec = catalog.find(name)
    if spec is None:
        raise SystemExit(f"unknown model {name!r}: demo or a catalog key (llama-3.2-1b, llama-3.1-8b, …)")
    if (work / name / "config.json").is_file():  # written by an earlier script of the same session (--models-dir)
        return work / name
    # The demo tokenizer keeps the data identical across shapes; the vocabulary size is the real model's.
    return write_model(work / name, demo_dir, dtype="bfloat16", **spec.llama_config_kwargs())


class Meter:
    """A TrainerCallback measuring step times, real tokens and peak memory over ``steps`` steps after the warm-up.

    Tokens are counted as batches are collated, and the data loader collates one batch ahead of training: by the
    time a step begins, its batch is counted already. So the window runs from the end of the last warm-up step to
    the end of the last measured step, and the run has one step more than is measured, so that the look-ahead is the
    same at both ends (at a run's last step the loader no longer reads ahead)."""

    def __init__(self, count_tokens, steps: int):
        from transformers import TrainerCallback

        meter = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == WARMUP_STEPS:
                    meter.start = time.perf_counter()
                    meter.tokens_at_start = count_tokens()
                    meter.reset_peak()
                elif WARMUP_STEPS < state.global_step <= WARMUP_STEPS + steps:
                    meter.steps = state.global_step - WARMUP_STEPS
                    meter.end = time.perf_counter()
                    meter.tokens_at_end = count_tokens()

        self.callback = Callback()
        self.start = self.end = 0.0
        self.tokens_at_start = self.tokens_at_end = self.steps = 0

    @staticmethod
    def reset_peak() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def result(self) -> dict:
        import resource

        import torch

        seconds = self.end - self.start
        tokens = self.tokens_at_end - self.tokens_at_start
        if torch.cuda.is_available():
            peak, kind = torch.cuda.max_memory_reserved(), "cuda reserved"
        else:
            peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "RSS"
        return {"tokens_per_s": tokens / seconds if seconds else 0.0, "s_per_step": seconds / max(1, self.steps),
                "steps": self.steps, "real_tokens": tokens, "peak_bytes": peak, "peak_kind": kind}


def engine_settings(folder: Path, data: Path, *, seq: int, micro_batch: int, steps: int, overrides=()) -> dict:
    """The engine's run settings for the comparison: its defaults, with the baseline's LoRA, batch and cutoff."""
    from engine.light.schema import set_path

    settings = {"model": str(folder), "dataset": str(data), "quantization": "nf4", "run_name": f"engine-{os.getpid()}",
                "data": {"cutoff": seq, "validation_share": 0.0},
                "train": {"micro_batch": micro_batch, "grad_accum": 1, "max_steps": steps,
                          "save_steps": 10**6, "logging_steps": 1, "gradient_checkpointing": True}}
    for item in overrides:
        key, _, value = item.partition("=")
        set_path(settings, key, json.loads(value) if value[:1] in "[{0123456789tfn-" else value)
    return settings


def run_engine(args, folder: Path, data: Path) -> dict:
    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.light import config as run_config

    os.environ.setdefault("LLAMADESK_HOME", tempfile.mkdtemp(prefix="llamadesk-vs-"))
    settings = engine_settings(folder, data, seq=args.seq, micro_batch=args.micro_batch,
                               steps=WARMUP_STEPS + args.steps + 1, overrides=args.engine_set)
    config = run_config.from_mapping(settings)
    holder: dict = {}

    from transformers import TrainerCallback

    class Hook(TrainerCallback):  # the engine's own collator counts real tokens; reach it through the data loader
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            holder["collator"] = train_dataloader.collate_fn if train_dataloader is not None else None

    meter = Meter(lambda: _collator_tokens(holder), args.steps)
    code = train.run(config, emitter=Emitter(None), control=Control(), callbacks=(Hook(), meter.callback))
    if code != 0:
        raise SystemExit("the engine run failed; see its run folder's engine.log")
    return meter.result()


def _collator_tokens(holder: dict) -> int:
    collator = holder.get("collator")
    while collator is not None and not hasattr(collator, "real_tokens"):
        collator = getattr(collator, "collate_fn", None) or getattr(collator, "__wrapped__", None)
    return collator.real_tokens if collator is not None else 0


def load_baseline(folder: Path):
    """(model, tokenizer) prepared as the tutorials do: nf4 with double quantization, prepare_model_for_kbit_training
    (fp32 upcast of the unquantized layers), LoRA r=16 on every linear layer."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, device_map={"": 0} if cuda else {"": "cpu"},
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype))
    model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    return model, tokenizer


def baseline_trainer(model, tokenizer, dataset, *, micro_batch: int, steps: int, collate=None, callbacks=()):
    """The plain Trainer: padded batches (DataCollatorForLanguageModeling), the model's loss, checkpointing on."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    cuda = torch.cuda.is_available()
    return Trainer(model=model, train_dataset=dataset, callbacks=list(callbacks),
                   data_collator=collate or DataCollatorForLanguageModeling(tokenizer, mlm=False),
                   args=TrainingArguments(
                       output_dir=tempfile.mkdtemp(prefix="baseline-"), per_device_train_batch_size=micro_batch,
                       gradient_accumulation_steps=1, max_steps=steps, learning_rate=2e-4, bf16=cuda,
                       optim="paged_adamw_8bit" if cuda else "adamw_torch", gradient_checkpointing=True,
                       logging_steps=1, report_to=[], save_strategy="no", use_cpu=not cuda, disable_tqdm=True))


def run_baseline(args, folder: Path, data: Path) -> dict:
    import datasets
    from transformers import DataCollatorForLanguageModeling

    model, tokenizer = load_baseline(folder)

    def tokenize(row):
        messages = [{"role": "user", "content": row["instruction"] + ("\n\n" + row["input"] if row["input"] else "")},
                    {"role": "assistant", "content": row["output"]}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return tokenizer(text, truncation=True, max_length=args.seq)

    dataset = datasets.load_dataset("json", data_files=str(data), split="train")
    dataset = dataset.map(tokenize, remove_columns=dataset.column_names)
    padding = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    counted = {"tokens": 0}

    def collate(features):
        batch = padding(features)
        counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    meter = Meter(lambda: counted["tokens"], args.steps)
    baseline_trainer(model, tokenizer, dataset, micro_batch=args.micro_batch, steps=WARMUP_STEPS + args.steps + 1,
                     collate=collate, callbacks=[meter.callback]).train()
    return meter.result()


def side_main(args) -> None:
    folder, data = Path(args.model_dir), Path(args.data)
    result = (run_engine if args.side == "engine" else run_baseline)(args, folder, data)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6,
                        help="measured optimizer steps (after 2 warm-up steps, and before one more)")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--engine-set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--tokenizer", help="a folder with the demo tokenizer's files, for catalog shapes where the "
                        "demo model is not at hand")
    parser.add_argument("--only", choices=("engine", "baseline"), help="run one side (e.g. to try engine options)")
    parser.add_argument("--models-dir", help="keep the random-weight models here and reuse them across runs")
    parser.add_argument("--side", choices=("engine", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args)
        return

    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="llamadesk-vs-baseline-"))
    folder = model_folder(args.model, Path(args.models_dir) if args.models_dir else work, args.tokenizer)
    data = work / "data.jsonl"
    make_dataset(data, AutoTokenizer.from_pretrained(folder), args.rows, args.seq)
    results = {}
    for side in [args.only] if args.only else ["baseline", "engine"]:
        command = [sys.executable, __file__, "--side", side, "--model-dir", str(folder), "--data", str(data),
                   "--seq", str(args.seq), "--micro-batch", str(args.micro_batch), "--steps", str(args.steps)]
        command += [arg for item in args.engine_set for arg in ("--engine-set", item)]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
        results[side] = json.loads(line.removeprefix("RESULT "))
        results[side]["wall_s"] = time.monotonic() - started
    print(f"model {args.model}, cutoff {args.seq}, micro-batch {args.micro_batch}, {args.steps} measured steps"
          + (f", engine options {' '.join(args.engine_set)}" if args.engine_set else ""))
    kind = next(iter(results.values()))["peak_kind"]
    print(f"{'':10} {'tokens/s':>10} {'s/step':>8} {'peak ' + kind:>18} {'tokens/step':>12}")
    for side, r in results.items():
        print(f"{side:10} {r['tokens_per_s']:10,.0f} {r['s_per_step']:8.2f} {r['peak_bytes'] / 2**30:15.2f} GiB "
              f"{r['real_tokens'] / max(1, r['steps']):12,.0f}")
    if len(results) == 2:
        base, eng = results["baseline"], results["engine"]
        print(f"engine/baseline: tokens/s {eng['tokens_per_s'] / base['tokens_per_s']:.2f}x, "
              f"peak memory {eng['peak_bytes'] / base['peak_bytes']:.2f}x")
    print("JSON " + json.dumps({"model": args.model, "seq": args.seq, "micro_batch": args.micro_batch,
                                "engine_set": args.engine_set, **results}))


if __name__ == "__main__":
    main()
