"""The catalog of LLaMA-family models a user can pick, with the architecture facts of each official config.json.

The facts drive the parameter count, the VRAM estimate and the ``LlamaConfig`` used to build shape-exact
random-weight models for tests and benchmarks, so they are kept verbatim from the hub configs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import yaml

import resources

CATALOG_FILE = "models.yaml"

# Fields passed straight to transformers.LlamaConfig.
_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "tie_word_embeddings",
    "rope_theta",
    "rope_scaling",
    "rms_norm_eps",
)


@dataclass(frozen=True)
class ModelSpec:
    """One pickable model size. Architecture fields mirror the model's official config.json."""

    key: str
    name: str
    family: str
    hub_id: str
    instruct_hub_id: str | None
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope_theta: float
    rope_scaling: dict | None
    rms_norm_eps: float
    license: str
    license_url: str | None
    gated: bool
    download_bytes: int

    @property
    def param_count(self) -> int:
        """Exact parameter count of LlamaForCausalLM with these facts (no biases, RMSNorm weights only)."""
        h, v, i = self.hidden_size, self.vocab_size, self.intermediate_size
        q_dim = self.num_attention_heads * self.head_dim
        kv_dim = self.num_key_value_heads * self.head_dim
        attention = h * q_dim + 2 * h * kv_dim + q_dim * h
        mlp = 3 * h * i
        norms = 2 * h
        per_layer = attention + mlp + norms
        embeddings = v * h
        lm_head = 0 if self.tie_word_embeddings else v * h
        return embeddings + self.num_hidden_layers * per_layer + h + lm_head

    def llama_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers.LlamaConfig`` that reproduce this architecture."""
        kwargs = {name: getattr(self, name) for name in _CONFIG_FIELDS}
        # transformers 5 folds rope_theta and rope_scaling into one rope_parameters dict.
        rope = {"rope_type": "default", **(kwargs.pop("rope_scaling") or {})}
        rope["rope_theta"] = kwargs.pop("rope_theta")
        kwargs["rope_parameters"] = rope
        return kwargs


@lru_cache(maxsize=1)
def load_catalog() -> tuple[ModelSpec, ...]:
    raw = yaml.safe_load(resources.path(CATALOG_FILE).read_text(encoding="utf-8"))
    names = {f.name for f in fields(ModelSpec)}
    specs = []
    for entry in raw["models"]:
        unknown = set(entry) - names
        if unknown:
            raise ValueError(f"{CATALOG_FILE}: entry {entry.get('key')!r} has unknown fields {sorted(unknown)}")
        entry = dict(entry)
        entry.setdefault("head_dim", entry["hidden_size"] // entry["num_attention_heads"])
        entry.setdefault("instruct_hub_id", None)
        entry.setdefault("license_url", None)
        entry.setdefault("rope_scaling", None)
        specs.append(ModelSpec(**entry))
    return tuple(specs)


def find(key_or_hub_id: str) -> ModelSpec | None:
    """The catalog entry for a key ("llama-3.2-1b") or one of its hub ids, or None."""
    wanted = key_or_hub_id.strip().lower()
    for spec in load_catalog():
        ids = {spec.key, spec.hub_id.lower(), (spec.instruct_hub_id or "").lower()}
        if wanted in ids:
            return spec
    return None
