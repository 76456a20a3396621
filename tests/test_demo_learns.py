"""The real demo model learns distinctive facts from a short QLoRA fine-tune, and did not know them before."""

from __future__ import annotations

import json

import pytest

import resources
from engine.heavy import demo_job, train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.light import demo_settings
from engine.light.run_folder import RunFolder


@pytest.mark.slow
def test_short_qlora_fine_tune_teaches_the_facts(demo_home, tmp_path):
    from engine.heavy.generation import Generator
    from engine.heavy.models.demo_model import demo_dir

    questions = demo_settings.questions()
    rows = json.loads(resources.path(demo_settings.SAMPLE).read_text(encoding="utf-8"))
    # The plain question rows of the four facts the demo asks about (five phrasings each).
    facts = [r for r in rows if not r.get("input") and any(q.expect.lower() in r["output"].lower() for q in questions)]
    assert 15 <= len(facts) <= 30
    data = tmp_path / "facts.json"
    data.write_text(json.dumps(facts), encoding="utf-8")

    config = demo_settings.demo_config(**{"dataset": str(data), "run_name": "facts", "train.epochs": 6.0,
                                 "train.micro_batch": 4})
    assert config.quantization == "nf4"
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0

    run = RunFolder(demo_home / "runs" / "facts")
    tuned = Generator.load(demo_dir(), run.adapter_dir, config=run.load_config())
    assert tuned.base_precision == "4-bit nf4"  # the base the adapter was trained against
    before = demo_job.ask(tuned, questions, adapter=False)
    after = demo_job.ask(tuned, questions)
    for question, old, new in zip(questions, before, after):
        assert question.expect.lower() not in old.lower(), (question.question, old)
        assert question.expect.lower() in new.lower(), (question.question, new)
