"""Batches: padded rows and padding-free rows give the same loss and gradients, and no example attends to another."""

from __future__ import annotations

import torch

from engine.heavy.collator import IGNORE, PaddingCollator


def _examples() -> list[dict]:
    generator = torch.Generator().manual_seed(3)
    found = []
    for n, prompt in ((9, 4), (23, 10), (14, 0)):
        ids = torch.randint(10, 1000, (n,), generator=generator).tolist()
        found.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:], "position_ids": list(range(n))})
    return found


def _lora_model(folder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False  # as the engine trains: with a cache, transformers ignores the packing boundaries
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0,
                                            init_lora_weights=False))


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_padding_free_batches_equal_padded_batches(tiny_model):
    model = _lora_model(tiny_model)
    padded = PaddingCollator(0)(_examples())
    free = PaddingCollator(0, padding_free=True)(_examples())
    assert padded["input_ids"].shape == (3, 23) and free["input_ids"].shape == (1, 9 + 23 + 14)
    assert int((padded["labels"][:, 1:] != IGNORE).sum()) == int((free["labels"][:, 1:] != IGNORE).sum())
    loss, grads = _loss_and_grads(model, padded)
    loss_free, grads_free = _loss_and_grads(model, free)
    assert torch.allclose(loss_free, loss, rtol=1e-5)
    for name, grad in grads.items():
        assert torch.allclose(grads_free[name], grad, rtol=1e-4, atol=1e-6), name


def test_side_by_side_examples_see_only_themselves(tiny_model):
    model = _lora_model(tiny_model).eval()
    examples = _examples()
    free = PaddingCollator(0, padding_free=True)(examples)
    with torch.no_grad():
        together = model(input_ids=free["input_ids"], position_ids=free["position_ids"]).logits[0]
        start = 0
        for example in examples:
            alone = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
            n = len(example["input_ids"])
            assert torch.allclose(together[start:start + n], alone, atol=1e-4), f"example at {start}"
            start += n


def test_real_tokens_count_only_text():
    padded, free = PaddingCollator(0), PaddingCollator(0, padding_free=True)
    padded(_examples())
    free(_examples())
    assert padded.real_tokens == free.real_tokens == 9 + 23 + 14
