"""A merged LLaMA-family model folder (safetensors) as one GGUF file for llama.cpp, LM Studio and Ollama: F16, Q8_0 or
Q4_K_M, with the tokenizer, its special tokens and the chat template in the metadata.

Written with the ``gguf`` package (the writer, the tensor names, the special-token reader, the Q8_0 quantizer) and,
for K-quants, ggml itself (ggml_quant.py). What llama.cpp's LLaMA loader expects and the Hugging Face layout does not
give directly:

- llama.cpp rotates adjacent pairs of a head's query and key values where Hugging Face rotates its two halves, so the
  rows of q_proj and k_proj are reordered per head (``_interleave_halves``);
- Llama 3.1/3.2's frequency scaling is a ``rope_freqs`` tensor of per-frequency factors, taken here from
  transformers' own computation of the scaled frequencies;
- the tokenizer's pre-tokenizer must be one llama.cpp knows by name: it is recognised by how the tokenizer tokenizes a
  check text (pre_tokenizer.py), and an unknown one is refused; SentencePiece tokenizers (Llama 2, TinyLlama) are
  read with sentencepiece;
- the end of a turn is the token the chat template closes a reply with (end_of_turn.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType, TokenType
from safetensors import safe_open
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from engine.heavy import end_of_turn
from engine.heavy.export import ggml_quant, pre_tokenizer
from engine.heavy.models import tokenizer as tokenizers
from engine.light.errors import UserError

FILE_TYPES = {"f16": LlamaFileType.MOSTLY_F16, "q8_0": LlamaFileType.MOSTLY_Q8_0,
              "q4_k_m": LlamaFileType.MOSTLY_Q4_K_M}
# A K-quant needs rows of a multiple of 256 values; a narrower model gets the nearest type whose blocks fit.
NARROW_ROW_FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}


class ExportError(UserError):
    kind = "export"


class Cancelled(Exception):
    pass


@dataclass
class Written:
    path: Path
    types: Counter = field(default_factory=Counter)  # tensor type name → count
    bytes: int = 0


@dataclass
class _Tensor:
    name: str  # the GGUF name
    source: str  # the safetensors name
    file: Path
    shape: tuple[int, ...]
    qtype: Q
    layer: int | None


def write(model_dir: Path, out: Path, quant: str, *, name: str,
          progress: Callable[[int, int], None] = lambda done, total: None,
          cancelled: Callable[[], bool] = lambda: False) -> Written:
    """Write ``model_dir`` as a GGUF file at ``out`` (the caller publishes it under its final name)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise ExportError(f"GGUF export supports LLaMA-architecture models, not '{config.get('model_type')}'",
                          where=str(model_dir), hint="export the merged model or the adapter instead")
    if quant not in FILE_TYPES:
        raise ExportError(f"unknown quantization '{quant}'", hint=f"choose one of {', '.join(FILE_TYPES)}")
    writer = gguf.GGUFWriter(str(out), "llama")
    _hyperparameters(writer, config, name, FILE_TYPES[quant])
    _tokenizer(writer, model_dir, config)
    tensors = _plan(model_dir, config, quant)
    extra = _rope_factors(config)
    for t in tensors:
        byte_shape = gguf.quant_shape_to_byte_shape(t.shape, t.qtype) if t.qtype not in (Q.F32, Q.F16) else t.shape
        dtype = {Q.F32: np.float32, Q.F16: np.float16}.get(t.qtype, np.uint8)
        writer.add_tensor_info(t.name, byte_shape, np.dtype(dtype), int(np.prod(byte_shape)) * np.dtype(dtype).itemsize,
                               raw_dtype=None if t.qtype in (Q.F32, Q.F16) else t.qtype)
    if extra is not None:
        writer.add_tensor_info("rope_freqs.weight", extra.shape, np.dtype(np.float32), extra.nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    written = Written(out)
    handles: dict[Path, object] = {}
    try:
        for index, t in enumerate(tensors):
            if cancelled():
                raise Cancelled
            handle = handles.get(t.file) or handles.setdefault(t.file, safe_open(str(t.file), framework="pt"))
            data = _encode(_prepared(handle.get_tensor(t.source), t, config), t.qtype)
            writer.write_tensor_data(data)
            written.types[t.qtype.name] += 1
            progress(index + 1, len(tensors))
        if extra is not None:
            writer.write_tensor_data(extra)
            written.types["F32"] += 1
    finally:
        writer.close()
    written.bytes = out.stat().st_size
    return written


# ---- metadata --------------------------------------------------------------------------------------------------

def _hyperparameters(w: gguf.GGUFWriter, config: dict, name: str, file_type: LlamaFileType) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(config.get("num_key_value_heads", heads))
    w.add_rope_freq_base(_rope(config).get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_vocab_size(config["vocab_size"])
    w.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    scaling = _rope(config)
    kind = (scaling.get("rope_type") or scaling.get("type") or "default").lower()
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(scaling["factor"])
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(scaling["factor"])
        w.add_rope_scaling_orig_ctx_len(scaling["original_max_position_embeddings"])
    elif kind not in ("default", "llama3"):
        raise ExportError(f"rope scaling '{kind}' is not supported by the GGUF export")
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _rope(config: dict) -> dict:
    """transformers 5 keeps rope_theta and the scaling in ``rope_parameters``; older configs at the top."""
    found = dict(config.get("rope_scaling") or {})
    found.update(config.get("rope_parameters") or {})
    if "rope_theta" in config:
        found.setdefault("rope_theta", config["rope_theta"])
    return found


def _rope_factors(config: dict) -> np.ndarray | None:
    """Llama 3.1/3.2: llama.cpp divides each rotary frequency by a factor stored as the tensor rope_freqs."""
    scaling = _rope(config)
    if (scaling.get("rope_type") or scaling.get("type")) != "llama3":
        return None
    hf_config = LlamaConfig(**{k: v for k, v in config.items() if k not in ("architectures", "transformers_version")})
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_config, "cpu")
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    theta = scaling.get("rope_theta", 10000.0)
    plain = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    return (plain / scaled.double()).float().numpy()


def _tokenizer(w: gguf.GGUFWriter, model_dir: Path, config: dict) -> None:
    tokenizer = tokenizers.load(model_dir)
    vocab_size = config["vocab_size"]
    if (model_dir / "tokenizer.model").is_file():
        tokens, scores, types = _sentencepiece(model_dir, tokenizer, vocab_size)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_scores(scores)
        w.add_add_space_prefix(True)
    else:
        tokens, types = _byte_level(tokenizer, vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre_tokenizer.llama_cpp_name(tokenizer, str(model_dir)))
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=(model_dir / "tokenizer.model").is_file() is False,
                                n_vocab=vocab_size)
    special.add_special_token = {}  # decided below from what the tokenizer does, not from its config's flags
    special.add_to_gguf(w, quiet=True)
    w.add_add_bos_token(chat_opens_with_bos(tokenizer))
    w.add_add_eos_token(adds_eos(tokenizer))
    turn_end, message_end = end_of_turn.turn_end_id(tokenizer), end_of_turn.message_end_id(tokenizer)
    if turn_end is not None:
        w.add_eot_token_id(turn_end)
    if message_end is not None and message_end != turn_end:
        w.add_eom_token_id(message_end)


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts the beginning-of-sequence token in front of a text (the GGUF's add_bos_token)."""
    ids = tokenizer("a").input_ids
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def chat_opens_with_bos(tokenizer) -> bool:
    """The GGUF's add_bos_token: whether the tokenizer puts the beginning-of-sequence token in front of a text and a
    chat prompt, as training tokenized it, starts with it too. TinyLlama's tokenizer adds one to a text but its
    template writes none and training added none, so llama.cpp must add none to a chat; SmolLM2's template opens
    with its BOS token as text, which its tokenizer never adds to a text."""
    if not adds_bos(tokenizer):
        return False
    if not getattr(tokenizer, "chat_template", None):
        return True
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "a"}], add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def adds_eos(tokenizer) -> bool:
    ids = tokenizer("a").input_ids
    return bool(ids) and tokenizer.eos_token_id is not None and ids[-1] == tokenizer.eos_token_id


def _byte_level(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    by_id = {i: piece for piece, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        piece = by_id.get(i)
        if piece is None:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            control = added[i].special or (piece.startswith("<|") and piece.endswith("|>"))
            types.append(TokenType.CONTROL if control else TokenType.USER_DEFINED)
        else:
            tokens.append(piece)
            types.append(TokenType.NORMAL)
    return tokens, types


def _sentencepiece(model_dir: Path, tokenizer, vocab_size: int) -> tuple[list[bytes], list[float], list[int]]:
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError:
        raise ExportError("reading a SentencePiece tokenizer needs the sentencepiece package",
                          hint="pip install sentencepiece") from None
    processor = SentencePieceProcessor()
    processor.LoadFromFile(str(model_dir / "tokenizer.model"))
    tokens, scores, types = [], [], []
    for i in range(vocab_size):
        if i < processor.vocab_size():
            tokens.append(processor.IdToPiece(i).encode("utf-8"))
            scores.append(processor.GetScore(i))
            types.append(TokenType.UNKNOWN if processor.IsUnknown(i) else TokenType.CONTROL if processor.IsControl(i)
                         else TokenType.UNUSED if processor.IsUnused(i) else TokenType.BYTE if processor.IsByte(i)
                         else TokenType.NORMAL)
        elif i in tokenizer.added_tokens_decoder:  # tokens added on top of the SentencePiece model
            token = tokenizer.added_tokens_decoder[i]
            tokens.append(token.content.encode("utf-8"))
            scores.append(-1000.0)
            types.append(TokenType.CONTROL if token.special else TokenType.USER_DEFINED)
        else:
            tokens.append(f"[PAD{i}]".encode())
            scores.append(-1000.0)
            types.append(TokenType.UNUSED)
    return tokens, scores, types


# ---- tensors ---------------------------------------------------------------------------------------------------

def _plan(model_dir: Path, config: dict, quant: str) -> list[_Tensor]:
    layers = config["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    tied = config.get("tie_word_embeddings", False)
    planned = []
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for source in handle.keys():
                if source.endswith("rotary_emb.inv_freq") or (tied and source == "lm_head.weight"):
                    continue  # recomputed by llama.cpp; a tied head is the embedding itself
                target = names.get_name(source, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise ExportError(f"the weight '{source}' has no place in a LLaMA GGUF", where=str(file))
                shape = tuple(handle.get_slice(source).get_shape())
                layer = int(source.split(".")[2]) if source.startswith("model.layers.") else None
                planned.append(_Tensor(target, source, file, shape, Q.F32, layer))
    for t in planned:
        t.qtype = _type_for(t, quant, layers, tied)
    return planned


def _type_for(t: _Tensor, quant: str, layers: int, tied: bool) -> Q:
    if len(t.shape) == 1:
        return Q.F32  # norms
    if quant == "f16":
        return Q.F16
    if quant == "q8_0":
        return Q.Q8_0 if t.shape[-1] % 32 == 0 else Q.F16
    wanted = _q4_k_m(t, layers, tied)
    if t.shape[-1] % ggml_quant.block_size(wanted):
        wanted = NARROW_ROW_FALLBACK.get(wanted, wanted)
    return wanted if t.shape[-1] % ggml_quant.block_size(wanted) == 0 else Q.F16


def _q4_k_m(t: _Tensor, layers: int, tied: bool) -> Q:
    """The Q4_K_M mix: Q4_K throughout, with more bits where the error costs most: the output head (or the tied
    embedding that serves as it) in Q6_K, and in Q6_K the value projections and the MLP's down projections of the
    first and last eighth of the layers and of every third layer between."""
    if t.name == "output.weight" or (tied and t.name == "token_embd.weight"):
        return Q.Q6_K if t.shape[-1] % 256 == 0 else Q.Q8_0
    if t.layer is not None and (t.name.endswith("attn_v.weight") or t.name.endswith("ffn_down.weight")):
        eighth = layers // 8
        more = t.layer < eighth or t.layer >= 7 * layers // 8 or (t.layer - eighth) % 3 == 2
        return Q.Q6_K if more else Q.Q4_K
    return Q.Q4_K


def _prepared(tensor: torch.Tensor, t: _Tensor, config: dict) -> np.ndarray:
    values = tensor.to(torch.float32)
    if t.name.endswith("attn_q.weight"):
        values = _interleave_halves(values, config["num_attention_heads"])
    elif t.name.endswith("attn_k.weight"):
        values = _interleave_halves(values, config.get("num_key_value_heads", config["num_attention_heads"]))
    return values.numpy()


def _interleave_halves(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Per head, the rows [x0 … x(d/2-1), y0 … y(d/2-1)] become [x0, y0, x1, y1, …]: Hugging Face's rotary
    embedding pairs each value with the one half a head away, llama.cpp's with its neighbour."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _encode(values: np.ndarray, qtype: Q) -> np.ndarray:
    if qtype == Q.F32:
        return values.astype(np.float32)
    if qtype == Q.F16:
        return values.astype(np.float16)
    if qtype == Q.Q8_0:
        return gguf.quants.quantize(values, qtype)
    return ggml_quant.quantize(values, qtype)
