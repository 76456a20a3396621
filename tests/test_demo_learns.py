"""The real demo model learns distinctive facts from a short QLoRA fine-tune, and did not know them before."""

from __future__ import annotations

import pytest

from engine.heavy import demo_job
from engine.light import demo_settings


@pytest.mark.slow
def test_short_qlora_fine_tune_teaches_the_facts(demo_facts_run, demo_model_dir):
    from engine.heavy.generation import Generator

    tuned = Generator.load(demo_model_dir, demo_facts_run.adapter_dir, config=demo_facts_run.load_config())
    assert tuned.base_precision == "4-bit nf4"  # the base the adapter was trained against
    questions = demo_settings.questions()
    before = demo_job.ask(tuned, questions, adapter=False)
    after = demo_job.ask(tuned, questions)
    for question, old, new in zip(questions, before, after):
        assert question.expect.lower() not in old.lower(), (question.question, old)
        assert question.expect.lower() in new.lower(), (question.question, new)
