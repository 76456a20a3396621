"""Preparing the base model for training: what stays 16-bit, which layers are checkpointed, and that the estimator's
lines for these choices match the real objects."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from engine.heavy import model_setup
from engine.light import config as run_config
from engine.light import estimator, fit
from engine.light.model_folder import spec_from_config
from engine.light.units import GIB


def _train_settings(**changes):
    return replace(run_config.TrainSettings(), **changes)


def _load_4bit(folder):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, quantization_config=quantization,
                                                device_map={"": "cpu"})


def _unquantized_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.dtype != torch.uint8)


def _between_layers_dtype(model):
    """The dtype of the hidden states entering the second decoder layer."""
    seen = []
    hook = model.model.layers[1].register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    hook.remove()
    return seen[0]


@pytest.mark.parametrize("upcast", [False, True])
def test_frozen_layers_stay_16_bit_unless_upcast_and_the_estimator_counts_them(tiny_model, upcast):
    model = _load_4bit(tiny_model)
    model_setup.for_training(model, _train_settings(fp32_frozen_layers=upcast, gradient_checkpointing=False),
                         quantized=True, device="cpu")
    spec = spec_from_config(json.loads((tiny_model / "config.json").read_text()))
    config = run_config.RunConfig(compute_dtype="bfloat16").with_values({"train.fp32_frozen_layers": upcast})
    cpu = estimator.Target(device="cpu")
    line = {x.name: x.bytes for x in estimator.estimate(spec, config, cpu).lines}["16/32-bit layers"]
    assert _unquantized_bytes(model) == line == estimator.unquantized_params(spec) * (4 if upcast else 2)
    assert not any(p.requires_grad for p in model.parameters())
    # The fp32 norms turn the residual stream fp32; the estimator's checkpointed inputs follow it.
    assert _between_layers_dtype(model) == (torch.float32 if upcast else torch.bfloat16)
    assert estimator.residual_bytes(config, cpu) == (4 if upcast else 2)


def test_a_16_bit_qlora_step_trains_every_adapter(tiny_model):
    from peft import LoraConfig, get_peft_model

    model = _load_4bit(tiny_model)
    model_setup.for_training(model, _train_settings(), quantized=True, device="cpu")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    model.train()
    ids = torch.randint(10, 1000, (2, 12))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_an_evaluation_leaves_the_4_bit_layers_trainable(tiny_model):
    """An evaluation forward without gradients must not change what the backward pass through the 4-bit layers gives
    (bitsandbytes repacks CPU weights for inference on AVX512-BF16 CPUs; on others this holds trivially)."""
    model = _load_4bit(tiny_model)
    model_setup.for_training(model, _train_settings(gradient_checkpointing=False), quantized=True, device="cpu")
    ids = torch.randint(10, 1000, (2, 12))

    def input_gradient():
        model.train()
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        model(inputs_embeds=embeddings, labels=ids).loss.backward()
        return embeddings.grad

    before = input_gradient()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    assert torch.equal(input_gradient(), before)


def _grads(folder, settings, device="cpu"):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()  # layers 2 and 3 are new (seeded) to the 2-layer checkpoint: no load report
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, num_hidden_layers=4)
    logging.set_verbosity_warning()
    if settings is not None:
        model_setup.for_training(model, settings, quantized=False, device=device)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0,
                                             init_lora_weights=False))  # random B too: every matrix gets a gradient
    model.train()
    ids = torch.randint(10, 1000, (2, 16), generator=torch.Generator().manual_seed(1))
    model(input_ids=ids, labels=ids).loss.backward()
    flags = [layer.gradient_checkpointing for layer in model.get_base_model().model.layers]
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}, flags


def test_checkpointing_every_other_layer_gives_the_same_gradients(tiny_model):
    plain, _ = _grads(tiny_model, None)
    every, flags_every = _grads(tiny_model, _train_settings(checkpoint_every=1))
    other, flags_other = _grads(tiny_model, _train_settings(checkpoint_every=2))
    assert flags_every == [True] * 4 and flags_other == [True, False, True, False]
    for name, grad in plain.items():
        assert torch.allclose(every[name], grad, atol=1e-6) and torch.allclose(other[name], grad, atol=1e-6), name


@pytest.mark.parametrize("every", [1, 2, 3])
def test_the_estimator_counts_the_layers_transformers_checkpoints(tiny_model, every):
    _, flags = _grads(tiny_model, _train_settings(checkpoint_every=every))
    spec = replace(spec_from_config(json.loads((tiny_model / "config.json").read_text())), num_hidden_layers=4)
    config = run_config.RunConfig().with_values({"train.checkpoint_every": every})
    assert estimator.checkpointed_layers(spec, config) == sum(flags)


@pytest.mark.parametrize("device, offload", [("cuda", True), ("cpu", False)])
def test_offloading_is_asked_of_transformers_on_a_gpu_and_left_out_on_the_cpu(tiny_model, monkeypatch, device,
                                                                              offload):
    """Pinned host memory needs a GPU, so on the CPU offloading is left out (it would fail there); whether the
    offloaded gradients are right is checked on a GPU (tests/test_gpu.py)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    asked = []
    monkeypatch.setattr(model, "activation_checkpointing_enable", lambda *args, **kwargs: asked.append(kwargs))
    model_setup.for_training(model, _train_settings(checkpoint_offload=True, checkpoint_every=2), quantized=False,
                             device=device)
    assert asked == [{"every_n_layers": 2, "offload": offload}]
    estimate_config = run_config.RunConfig().with_values({"train.checkpoint_offload": True})
    target = estimator.Target(device=device)
    spec = spec_from_config(json.loads((tiny_model / "config.json").read_text()))
    assert (estimator.offloaded_bytes(spec, estimate_config, target) > 0) == offload


def test_the_estimator_moves_what_offloading_and_upcasting_move():
    """Directions only: the bytes themselves are measured against real GPU peaks (tests/test_gpu.py, bench/)."""
    from engine.light import catalog

    spec = catalog.find("llama-3.1-8b")
    base = run_config.RunConfig().with_values({"train.micro_batch": 1, "data.cutoff": 8192})

    def activations(**changes):
        config = base.with_values({f"train.{k}": v for k, v in changes.items()})
        return {x.name: x.bytes for x in estimator.estimate(spec, config).lines}["activations"]

    offloaded = estimator.offloaded_bytes(spec, base.with_values({"train.checkpoint_offload": True}))
    assert offloaded > 0 and activations(checkpoint_offload=True) == activations() - offloaded
    assert activations(checkpoint_every=4) > activations() and activations(fp32_frozen_layers=True) > activations()


def test_the_advice_offers_first_the_savers_that_keep_the_training_the_same():
    config = run_config.from_mapping({"dataset": "x", "model": "llama-3.1-8b", "data": {"cutoff": 4096},
                                      "train": {"micro_batch": 2, "grad_accum": 2, "loss_chunk_tokens": 0,
                                                "checkpoint_every": 2, "fp32_frozen_layers": True}})
    spec = fit.spec_for(config.model)
    savers = "keep the frozen layers in 16 bits, compute the loss 1,024 tokens at a time, checkpoint every layer"

    roomy = estimator.suggestions(spec, config, 30 * GIB)  # the three savers are enough
    assert roomy[0].change == savers
    applied = fit.apply(config, roomy[0])
    t = applied.train
    assert (t.loss_chunk_tokens, t.checkpoint_every, t.checkpoint_offload, t.fp32_frozen_layers) == (
        run_config.DEFAULT_LOSS_CHUNK, 1, False, False)
    assert (t.micro_batch, t.grad_accum, applied.data.cutoff, applied.lora.rank) == (2, 2, 4096, 16)
    assert estimator.estimate(spec, applied).total <= 0.9 * 30 * GIB
    fix = fit.resume_safe_fix(config, budget_bytes=30 * GIB, measured_peak=estimator.estimate(spec, config).total)
    assert fix == (savers, {"train.checkpoint_every": 1, "train.fp32_frozen_layers": False,
                            "train.loss_chunk_tokens": 1024})

    tight = estimator.suggestions(spec, config, 14 * GIB)  # all savers, then the batch or the sequence
    assert tight and all(x.change.startswith(savers + ", hold the checkpointed activations in CPU memory, ")
                         for x in tight)
    smaller = next(x for x in tight if x.overrides.get("train.micro_batch") == 1)
    applied = fit.apply(config, smaller)
    assert (applied.train.micro_batch, applied.train.grad_accum, applied.train.checkpoint_offload) == (1, 4, True)
    assert estimator.estimate(spec, applied).total <= 0.9 * 14 * GIB


def test_the_estimator_counts_the_mask_that_keeps_examples_apart():
    from engine.light import catalog

    spec = catalog.find("llama-3.2-1b")
    one = run_config.RunConfig().with_values({"train.micro_batch": 1, "data.cutoff": 4096})
    assert estimator.attention_mask_bytes(one) == 0  # one example per row: plain causal attention, no mask
    assert estimator.attention_mask_bytes(one.with_values({"data.packing": True})) == 4096 * 4096 * 3
    four = one.with_values({"train.micro_batch": 4})
    assert estimator.attention_mask_bytes(four) == (4 * 4096) ** 2 * 3  # one row of 16,384 tokens
    assert estimator.attention_mask_bytes(four.with_values({"train.padding_free": False})) == 4 * 4096 * 4096 * 3
    line = {x.name: x for x in estimator.estimate(spec, four).lines}["activations"]
    assert "attention mask" in line.explanation
