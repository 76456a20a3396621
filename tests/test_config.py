"""The run config: typed, documented, every problem reported at once with its field path."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from engine.light import config


def test_defaults_round_trip_through_yaml(tmp_path):
    original = config.from_mapping({"dataset": "data.jsonl", "lora": {"rank": 64}, "train": {"epochs": 2}})
    path = tmp_path / "run.yaml"
    config.save(original, path)
    loaded = config.load(path)
    assert loaded == original
    assert isinstance(loaded.train.epochs, float) and loaded.lora.rank == 64


def test_all_problems_reported_at_once_with_paths():
    with pytest.raises(config.ConfigError) as caught:
        config.from_mapping({
            "lora": {"rank": 0, "alpah": 16},
            "train": {"learning_rate": "fast", "micro_batch": 0},
            "data": {"cutoff": 4},
            "device": "tpu",
            "surprise": True,
        })
    problems = caught.value.problems
    expected = ["dataset:", "lora.rank:", "lora.alpah: unknown field (did you mean 'alpha'?)",
                "train.learning_rate: expected a number", "train.micro_batch:", "data.cutoff:", "device:",
                "surprise: unknown field"]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)


def test_types_survive_validation():
    with pytest.raises(config.ConfigError) as caught:
        config.from_mapping({"dataset": "x", "train": {"gradient_checkpointing": "yes", "max_steps": 2.5}})
    assert any("gradient_checkpointing: expected true/false" in p for p in caught.value.problems)
    assert any("max_steps: expected a whole number" in p for p in caught.value.problems)


def test_cross_field_rules():
    with pytest.raises(config.ConfigError) as caught:
        config.from_mapping({"dataset": "x", "device": "cpu", "compute_dtype": "bfloat16",
                             "train": {"optimizer": "paged_adamw_8bit"}, "run_name": "../escape"})
    text = "\n".join(caught.value.problems)
    assert "compute_dtype" in text and "paged optimizers need a CUDA GPU" in text and "run_name" in text


def test_every_field_is_documented():
    docs = config.docs()
    assert "lora.rank" in docs and "data.cutoff" in docs and "train.micro_batch" in docs
    assert all(len(text) > 15 for text in docs.values()), [k for k, v in docs.items() if len(v) <= 15]


def test_bad_yaml_file_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert "not valid YAML" in str(caught.value)
    with pytest.raises(config.ConfigError):
        config.load(tmp_path / "missing.yaml")


def test_quantization_and_peft_configs_come_from_one_place():
    import torch

    from engine.heavy.model_setup import peft_config, quantization_config

    run = config.from_mapping({"dataset": "x", "lora": {"rank": 8, "alpha": 16, "target_modules": ["q_proj"]}})
    bnb = quantization_config(run, torch.bfloat16)
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    lora = peft_config(run)
    assert lora.r == 8 and lora.lora_alpha == 16 and set(lora.target_modules) == {"q_proj"}
    plain = dataclasses.replace(run, quantization="none")
    assert quantization_config(plain, torch.float32) is None
    assert peft_config(config.from_mapping({"dataset": "x"})).target_modules == "all-linear"


def test_cli_config_prints_documented_yaml():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "engine", "config", "--dataset", "d.json"], capture_output=True,
                         text=True, check=True).stdout
    assert "# LoRA rank r" in out
    assert config.from_mapping(yaml.safe_load(out)).dataset == "d.json"
