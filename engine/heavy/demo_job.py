"""``llamadesk-engine demo``: the embedded default main job, entirely offline.

Asks the demo model a few questions about a fictional island it cannot know, fine-tunes it with QLoRA on the
bundled sample dataset (progress on the terminal), then asks again: the answers now carry the dataset's facts.
"""

from __future__ import annotations

import sys
import time

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.generation import Generator
from engine.heavy.models.resolve import DEMO, model_folder
from engine.light.demo_settings import Question, demo_config, questions
from engine.light.run_folder import RunFolder


def ask(generator, items: list[Question], *, adapter: bool = True) -> list[str]:
    return [generator.reply([{"role": "user", "content": q.question}], adapter=adapter, max_new_tokens=48).text
            .strip() for q in items]


def run(out=None, **overrides) -> int:
    out = out or sys.stdout
    say = lambda text="": print(text, file=out, flush=True)  # noqa: E731
    started = time.monotonic()
    items = questions()
    say("LlamaDesk demo — fine-tune a small LLaMA model on facts about Vellmoor, a fictional island.\n")
    folder = model_folder(DEMO, progress=lambda m: say(f"  {m}")).path
    base = Generator.load(folder)
    before = ask(base, items, adapter=False)
    del base
    say("Before fine-tuning:")
    for q, answer in zip(items, before):
        say(f"  Q: {q.question}\n  A: {answer}\n")

    config = demo_config(**overrides)
    say(f"Fine-tuning with 4-bit QLoRA on {config.dataset.rsplit('/', 1)[-1]} "
        f"({config.train.epochs:g} epochs; this takes a few minutes on a CPU)…")
    emitter = Emitter(out, human=True)
    code = train.run(config, emitter=emitter, control=Control())
    emitter.close()
    if code != 0:
        say("Fine-tuning failed; see the messages above.")
        return code
    run = max((r for r in RunFolder.all() if r.has_adapter), key=lambda r: r.adapter_dir.stat().st_mtime)
    tuned = Generator.load(folder, run.adapter_dir, config=run.load_config())  # the base as it was trained on
    after = ask(tuned, items)
    say("\nAfter fine-tuning:")
    learned = 0
    for q, old, new in zip(items, before, after):
        knows = q.expect.lower() in new.lower()
        learned += knows
        say(f"  Q: {q.question}\n  before: {old}\n  after:  {new}   [{'✓' if knows else '✗'} {q.expect}]\n")
    say(f"The fine-tuned model states {learned} of {len(items)} facts it did not know before "
        f"({time.monotonic() - started:.0f} s in all). Run folder: {run.path}")
    say(f"Chat with it: llamadesk-engine chat --run {run.name}")
    return 0 if learned else 1
