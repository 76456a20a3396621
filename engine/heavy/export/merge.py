"""The merged model: a run's LoRA adapter folded into base weights, as a Hugging Face folder in 16 bits with the
tokenizer, the chat template, a generation config that stops at every end-of-turn token, and a model card.

For a 4-bit (QLoRA) run there are two bases to merge into. ``trained`` (the default) dequantizes the 4-bit weights
the adapter was trained against and merges into those, so the export answers exactly as the fine-tune did in
training, in evaluation and on the Chat page. ``original`` merges into the unquantized checkpoint instead: the
adapter then meets weights it never saw (the 4-bit rounding it learned to work with is gone). README's Export section
gives the two measured on the demo.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import bitsandbytes as bnb
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.initialization import no_init_weights

from engine.heavy import device as devices
from engine.heavy import model_setup
from engine.heavy.data.templates import ensure_chat_template
from engine.heavy.end_of_turn import end_of_turn_ids
from engine.heavy.models import tokenizer as tokenizers
from engine.light.config import RunConfig

INTO = ("trained", "original")
SAVED_DTYPE = torch.bfloat16
SENTENCEPIECE_MODEL = "tokenizer.model"  # the LLaMA families' own precision; half the bytes of fp32


def merged(base_dir: Path, adapter_dir: Path, config: RunConfig, *, into: str = "trained", device: str = "cpu"):
    """The base with the adapter folded in, in the run's compute precision, in CPU memory (one copy of the model;
    on a GPU only the 4-bit base is loaded there, to dequantize it as training computed it)."""
    dtype = devices.compute_dtype(config.compute_dtype, device)
    if into == "trained" and config.quantization == "nf4":
        base = _dequantized(base_dir, config, dtype, device)
    else:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, device_map={"": "cpu"})
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()


def _dequantized(base_dir: Path, config: RunConfig, dtype, device: str):
    """The 4-bit base as training loaded it, turned back into plain weights: each 4-bit layer dequantized exactly as
    the forward pass does, straight into a plain model's parameters in CPU memory. Done before any forward pass: on
    the CPU, bitsandbytes repacks the 4-bit data for its kernel at the first one, after which the stored layout no
    longer dequantizes. transformers' ``model.dequantize()`` gives the same weights (tests/test_merge.py) but turns
    the whole model into 16-bit where it is, on the GPU: twice and more the memory of the 4-bit model, which the card
    a QLoRA run was chosen for may not have; here one layer at a time leaves it."""
    quantized = AutoModelForCausalLM.from_pretrained(
        base_dir, dtype=dtype, device_map={"": 0 if device == "cuda" else "cpu"},
        quantization_config=model_setup.quantization_config(config, dtype))
    plain_config = copy.deepcopy(quantized.config)
    for attribute in ("quantization_config", "_pre_quantization_dtype"):  # the merged model is plain 16-bit
        if hasattr(plain_config, attribute):
            delattr(plain_config, attribute)
    with no_init_weights():  # every weight is overwritten below
        plain = AutoModelForCausalLM.from_config(plain_config, dtype=dtype)
    if plain_config.tie_word_embeddings:
        plain.tie_weights()  # skipped with the initialisation: the head is the embedding itself
    targets = dict(plain.named_parameters())
    filled = set()
    with torch.no_grad():
        for name, module in quantized.named_modules():
            if isinstance(module, bnb.nn.Linear4bit):
                weight = module.weight
                targets[f"{name}.weight"].copy_(bnb.functional.dequantize_4bit(weight.data, weight.quant_state))
                filled.add(f"{name}.weight")
        for name, param in quantized.named_parameters():
            if name not in filled and name in targets:
                targets[name].copy_(param.data)
                filled.add(name)
    del quantized
    devices.release_memory()
    missing = sorted(set(targets) - filled)
    if missing:
        raise RuntimeError(f"dequantized weights do not fill the model: {missing[:5]}")
    return plain


def save(model, adapter_dir: Path, out: Path, card: str, *, base_dir: Path | None = None) -> None:
    """The folder people load with ``from_pretrained``: weights, tokenizer and template, generation config, card."""
    tokenizer = tokenizers.load(adapter_dir)  # the tokenizer and chat template the run trained with
    ensure_chat_template(tokenizer)
    model.to(SAVED_DTYPE).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _keep_sentencepiece_model(base_dir, adapter_dir, out)
    generation = GenerationConfig.from_model_config(model.config)
    ends = end_of_turn_ids(tokenizer)
    generation.eos_token_id = ends if len(ends) > 1 else (ends[0] if ends else tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    generation.save_pretrained(out)
    (out / "README.md").write_text(card, encoding="utf-8")


def _keep_sentencepiece_model(base_dir: Path | None, adapter_dir: Path, out: Path) -> None:
    """Llama 2 and TinyLlama's SentencePiece model, which transformers 5 no longer writes with the tokenizer: the GGUF
    conversion and llama.cpp's tokenizer are built from it."""
    for folder in (adapter_dir, base_dir):
        if folder is not None and (Path(folder) / SENTENCEPIECE_MODEL).is_file() and not (out / SENTENCEPIECE_MODEL).exists():
            shutil.copy2(Path(folder) / SENTENCEPIECE_MODEL, out / SENTENCEPIECE_MODEL)


def model_card(config: RunConfig, metrics: dict, into: str) -> str:
    base = ("the 4-bit weights it was trained against, dequantized" if config.quantization == "nf4" and
            into == "trained" else "the base model's original weights")
    lines = ["---", f"base_model: {config.model}", "tags: [llamadesk, merged-lora]", "---", "",
             f"# {Path(config.dataset).stem}: {config.model} fine-tuned with LlamaDesk", "",
             f"The LoRA adapter (rank {config.lora.rank}, alpha {config.lora.alpha}) merged into {base}; saved in "
             "bfloat16.", "", "## Training", "",
             f"- dataset: `{Path(config.dataset).name}`",
             f"- method: {'4-bit QLoRA' if config.quantization == 'nf4' else 'LoRA'}, learning rate "
             f"{config.train.learning_rate}, cutoff {config.data.cutoff} tokens"]
    lines += [f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
              for key, value in sorted(metrics.items())]
    lines += ["", "## Configuration", "", "```json", json.dumps(config.to_dict(), indent=2), "```", ""]
    return "\n".join(lines)
