"""The chunked loss equals the model's own: the same value and the same LoRA gradients, with prompt and padding
positions ignored, in a single batch and through the Trainer with gradient accumulation."""

from __future__ import annotations

import pytest
import torch

from engine.heavy import train, trainer
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.loss import IGNORE, chunked_loss_sum
from engine.light import config as run_config
from engine.light import run_folder


def _lora_model(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)  # non-zero, so every LoRA matrix gets a gradient
    return model


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_chunked_loss_and_gradients_equal_the_models_own(tiny_model, chunk):
    model = _lora_model(tiny_model)
    torch.manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (3, 21))
    labels = ids.clone()
    labels[0, :9] = IGNORE  # a prompt
    labels[1, 15:] = IGNORE  # padding
    labels[2, ::3] = IGNORE
    reference = model(input_ids=ids, labels=labels).loss
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()

    base = model.get_base_model()
    hidden = base.model(input_ids=ids).last_hidden_state
    total, count = chunked_loss_sum(hidden, base.lm_head, labels, chunk)
    loss = total / count
    loss.backward()
    assert count == int((labels[:, 1:] != IGNORE).sum())
    assert torch.allclose(loss, reference, rtol=1e-5, atol=1e-6)
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert torch.allclose(param.grad, expected[name], rtol=1e-4, atol=1e-6), name  # summation order


@pytest.mark.slow  # over 7 s: an engine process or a real run
def test_training_with_the_chunked_loss_matches_the_standard_loss_step_by_step(home, tiny_model, small_dataset,
                                                                               monkeypatch):

    calls = {"train": 0, "eval": 0}

    def counted(*args):
        calls["train" if torch.is_grad_enabled() else "eval"] += 1
        return chunked_loss_sum(*args)

    monkeypatch.setattr(trainer, "chunked_loss_sum", counted)
    losses, evaluations = {}, {}
    for chunk in (0, 16):
        config = run_config.from_mapping({
            "model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none",
            "run_name": f"chunk{chunk}", "data": {"validation_share": 0.2, "packing": True, "cutoff": 128},
            "train": {"max_steps": 4, "micro_batch": 2, "grad_accum": 2, "loss_chunk_tokens": chunk,
                      "learning_rate": 1e-2, "save_steps": 100, "eval_steps": 2}})
        assert train.run(config, emitter=Emitter(None), control=Control()) == 0
        rows = run_folder.read_jsonl(home / "runs" / f"chunk{chunk}" / "metrics.jsonl")
        losses[chunk] = [r["loss"] for r in rows if "loss" in r]
        evaluations[chunk] = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(losses[0]) == 4 and len(evaluations[0]) == 2
    assert losses[16] == pytest.approx(losses[0], rel=1e-4)
    assert evaluations[16] == pytest.approx(evaluations[0], rel=1e-4)
    assert calls["train"] == 4 * 2 and calls["eval"] > 0  # the chunked run used it for every micro-batch and in eval
