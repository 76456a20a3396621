"""The catalog's facts give the exact parameter count of the real architecture (built on the meta device)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.light import catalog

SPECS = catalog.load_catalog()
EXPECTED_KEYS = {
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b", "llama-3.1-70b",
    "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "tinyllama-1.1b", "smollm2-135m", "smollm2-360m",
    "smollm2-1.7b",
}


def test_catalog_lists_every_requested_size():
    assert {s.key for s in SPECS} == EXPECTED_KEYS


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_param_count_equals_real_architecture(spec):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**spec.llama_config_kwargs()))
    # Tied embeddings share one tensor, which parameters() yields once.
    assert sum(p.numel() for p in model.parameters()) == spec.param_count


@pytest.mark.parametrize("key, published", [
    ("llama-3-8b", 8_030_261_248), ("llama-3.2-1b", 1_235_814_400), ("llama-2-7b", 6_738_415_616),
    ("smollm2-135m", 134_515_008),
])
def test_param_count_matches_published_figures(key, published):
    assert catalog.find(key).param_count == published


def test_download_size_is_consistent_with_bf16_weights():
    for spec in SPECS:
        # The safetensors files hold bf16 weights: 2 bytes a parameter, plus headers and a few buffers.
        assert 0.99 < spec.download_bytes / (2 * spec.param_count) < 1.01, spec.key


def test_find_by_key_and_hub_ids():
    spec = catalog.find("llama-3.2-1b")
    assert catalog.find("meta-llama/Llama-3.2-1B-Instruct") is spec
    assert catalog.find("META-LLAMA/Llama-3.2-1B") is spec
    assert catalog.find("nobody/nothing") is None


def test_cli_lists_models():
    out = subprocess.run([sys.executable, "-m", "engine", "models", "--json"], capture_output=True, text=True,
                         check=True).stdout
    listed = {m["key"]: m for m in json.loads(out)}
    assert listed.keys() == EXPECTED_KEYS
    assert listed["llama-3.1-8b"]["context"] == 131072 and listed["llama-3.1-8b"]["gated"] is True
    assert listed["smollm2-135m"]["license"] == "apache-2.0" and listed["smollm2-135m"]["gated"] is False
    table = subprocess.run([sys.executable, "-m", "engine", "models"], capture_output=True, text=True,
                           check=True).stdout
    assert "Llama 3.1 405B" in table and "406B" in table
