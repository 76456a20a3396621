"""Random-weight LLaMA models with a real tokenizer: shape-exact stand-ins for tests and benchmarks (no download)."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def write_model(out: Path, tokenizer_dir: Path, *, seed: int = 0, dtype: str = "float32", **config_overrides) -> Path:
    """Save a random-weight LlamaForCausalLM to ``out`` with the tokenizer files of ``tokenizer_dir``.

    ``config_overrides`` are LlamaConfig fields (a catalog entry's ``llama_config_kwargs()`` gives real shapes);
    the defaults make a tiny model that trains in milliseconds.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    settings = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)
    settings.update(config_overrides)
    settings.setdefault("vocab_size", len(tokenizer))
    config = LlamaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **settings)
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))  # built in its dtype, not fp32 first
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).is_file():
            shutil.copy2(Path(tokenizer_dir) / name, out / name)
    return out
