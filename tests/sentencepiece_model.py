"""A tiny random-weight Llama 2 with a real SentencePiece vocabulary, an untied output head and Llama 3.1's
frequency scaling (test helper): the GGUF paths the demo model's byte-level vocabulary and tied head do not take."""

from __future__ import annotations

import json
from pathlib import Path

import resources

LLAMA2_TEMPLATE = (Path(__file__).parent / "data" / "chat_templates" / "llama2.jinja")


def write_llama2_model(out: Path, *, vocab: int = 1000) -> Path:
    import sentencepiece
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(f"{r['instruction']} {r.get('input', '')} {r['output']}" for r in rows) * 3,
                      encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out / "tokenizer"), vocab_size=vocab, model_type="bpe",
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    corpus.unlink()
    (out / "tokenizer.vocab").unlink()
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": False}), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = LLAMA2_TEMPLATE.read_text(encoding="utf-8")
    tokenizer.save_pretrained(out)
    config = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                         initializer_range=0.08,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 256})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out
