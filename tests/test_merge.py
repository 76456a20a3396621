"""The 4-bit base dequantized for the merge: the same weights as transformers' own dequantize() gives."""

from __future__ import annotations

import torch


def test_the_dequantized_base_is_what_transformers_dequantize_gives(tiny_model):
    from transformers import AutoModelForCausalLM

    from engine.heavy import model_setup
    from engine.heavy.export import merge
    from engine.light.config import RunConfig

    config = RunConfig(model=str(tiny_model), quantization="nf4")
    ours = merge._dequantized(tiny_model, config, torch.float32, "cpu").state_dict()
    quantized = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, device_map={"": "cpu"},
                                                     quantization_config=model_setup.quantization_config(
                                                         config, torch.float32))
    theirs = quantized.dequantize().state_dict()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).state_dict()
    assert set(ours) == set(theirs)
    for name, weight in ours.items():
        assert torch.equal(weight, theirs[name].to(weight.dtype)), name
    # and it is the 4-bit rounding of the original weights, not the original weights themselves
    projection = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(ours[projection], plain[projection])
    assert torch.allclose(ours[projection], plain[projection], atol=0.05)
