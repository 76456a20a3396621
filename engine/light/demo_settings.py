"""The demo's settings and questions: what ``llamadesk --demo`` opens with and ``llamadesk-engine demo`` runs.

QLoRA settings that teach the 135M demo model the bundled sample's facts in a few minutes on a laptop CPU, and the
questions (with the fact each answer should carry) that show it learned them.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

import resources
from engine.light import config as run_config

SAMPLE = "sample/harbor_lights.json"
QUESTIONS = "sample/demo_questions.yaml"


@dataclass
class Question:
    question: str
    expect: str


def questions() -> list[Question]:
    data = yaml.safe_load(resources.path(QUESTIONS).read_text(encoding="utf-8"))
    return [Question(q["question"], q["expect"]) for q in data["questions"]]


def demo_config(**overrides) -> run_config.RunConfig:
    """QLoRA settings that teach the 135M demo model the sample's facts in a few minutes on a laptop CPU."""
    data = {
        "model": "demo",
        "dataset": str(resources.path(SAMPLE)),
        # A tenth held out: the chart shows evaluation points, and the run ends comparing the base model and the
        # fine-tune on those questions.
        "data": {"validation_share": 0.1},
        "quantization": "nf4",
        "lora": {"rank": 16, "alpha": 32, "dropout": 0.0},
        "train": {"epochs": 3.0, "learning_rate": 1e-3, "micro_batch": 8, "grad_accum": 1, "warmup_ratio": 0.05,
                  # Memory is plentiful on the CPU: skipping recomputation makes each step faster.
                  "gradient_checkpointing": False, "save_steps": 1000, "logging_steps": 5,
                  "compare_prompts": 4},
    }
    return run_config.from_mapping(run_config.apply_overrides(data, overrides))
