"""Checking a local model folder before use: a LLaMA-family config, a tokenizer, safetensors weights, no custom code.

Each refusal says why and what to do. Pickle weights (.bin/.pt) can run code when loaded, so they are refused unless
the user explicitly allows them; ``trust_remote_code`` is never enabled, so folders that need it are refused.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from engine.light.errors import ModelSourceError

LLAMA_ARCHITECTURES = {"LlamaForCausalLM"}
LLAMA_MODEL_TYPES = {"llama"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


@dataclass
class ModelFolder:
    path: Path
    config: dict
    weights: list[Path]
    weight_format: str  # "safetensors" or "pickle"
    size_bytes: int
    warnings: list[str] = field(default_factory=list)

    @property
    def param_count(self) -> int | None:
        try:
            return spec_from_config(self.config).param_count
        except (KeyError, TypeError):
            return None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "architecture": (self.config.get("architectures") or ["?"])[0],
            "params": self.param_count,
            "weights": [p.name for p in self.weights],
            "weight_format": self.weight_format,
            "size_bytes": self.size_bytes,
            "warnings": self.warnings,
        }


def inspect_folder(path: str | Path, *, allow_pickle: bool = False) -> ModelFolder:
    folder = Path(path).expanduser()
    where = str(folder)
    if not folder.is_dir():
        raise ModelSourceError("no such folder", where=where, hint="choose the folder that holds config.json")
    config = _read_config(folder)
    _check_architecture(config, where)
    if config.get("auto_map") or list(folder.glob("*.py")):
        raise ModelSourceError(
            "this model needs custom Python code from its folder (trust_remote_code), which LlamaDesk never runs",
            where=where,
            hint="use a model that works with the standard LLaMA implementation in transformers",
            kind="remote_code",
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelSourceError(
            "no tokenizer found (tokenizer.json or tokenizer.model)",
            where=where,
            hint="copy the tokenizer files from the original model into this folder",
            kind="no_tokenizer",
        )
    weights, weight_format = _weights(folder, allow_pickle)
    return ModelFolder(folder, config, weights, weight_format, sum(p.stat().st_size for p in weights))


def _read_config(folder: Path) -> dict:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelSourceError("config.json is missing", where=str(folder),
                               hint="choose the folder that holds config.json and the weights", kind="no_config")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelSourceError(f"config.json is not valid JSON ({exc})", where=str(config_path),
                               hint="restore config.json from the original model", kind="bad_config") from None
    if not isinstance(config, dict):
        raise ModelSourceError("config.json does not hold an object", where=str(config_path), kind="bad_config")
    return config


def _check_architecture(config: dict, where: str) -> None:
    architectures = set(config.get("architectures") or [])
    if config.get("model_type") in LLAMA_MODEL_TYPES and (not architectures or architectures & LLAMA_ARCHITECTURES):
        return
    found = ", ".join(sorted(architectures)) or config.get("model_type") or "unknown"
    raise ModelSourceError(
        f"not a LLaMA-family model (architecture: {found})",
        where=where,
        hint="LlamaDesk fine-tunes LLaMA-architecture models (Llama 2/3/3.1/3.2, TinyLlama, SmolLM2 and their "
        "fine-tunes)",
        kind="not_llama",
    )


def _weights(folder: Path, allow_pickle: bool) -> tuple[list[Path], str]:
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                raise ModelSourceError("model.safetensors.index.json is damaged", where=str(index),
                                       hint="download the model again", kind="corrupt_weights") from None
            missing = sorted(s for s in shards if not (folder / s).is_file())
            if missing:
                raise ModelSourceError(f"weight shards are missing: {', '.join(missing[:3])}", where=str(folder),
                                       hint="the download is incomplete; download the model again",
                                       kind="missing_weights")
        for file in safetensors:
            _check_safetensors_header(file)
        return safetensors, "safetensors"
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        if allow_pickle:
            return pickles, "pickle"
        raise ModelSourceError(
            f"only pickle weights were found ({pickles[0].name}); loading them can run arbitrary code",
            where=str(folder),
            hint="convert the weights to safetensors, or allow pickle weights if you trust where they came from",
            kind="pickle_weights",
        )
    raise ModelSourceError("no model weights found (*.safetensors)", where=str(folder),
                           hint="download or copy the weights into this folder", kind="missing_weights")


def _check_safetensors_header(file: Path) -> None:
    """Read the JSON header (first 8 bytes give its length) and check the data it describes is all there."""
    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > min(size - 8, 100 << 20):
                raise ValueError("header length out of range")
            header = json.loads(handle.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + header_len + end > size:
            raise ValueError(f"file is truncated ({size} bytes, needs {8 + header_len + end})")
    except (ValueError, struct.error, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelSourceError(f"{file.name} is damaged ({exc})", where=str(file),
                               hint="download or copy this file again", kind="corrupt_weights") from None


def spec_from_config(config: dict):
    from engine.light.catalog import ModelSpec

    heads = config["num_attention_heads"]
    return ModelSpec(
        key="local", name="local", family="local", hub_id="", instruct_hub_id=None,
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"], num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=heads, num_key_value_heads=config.get("num_key_value_heads", heads),
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        max_position_embeddings=config.get("max_position_embeddings", 0),
        tie_word_embeddings=config.get("tie_word_embeddings", False), rope_theta=0.0, rope_scaling=None,
        rms_norm_eps=config.get("rms_norm_eps", 1e-6), license="", license_url=None, gated=False, download_bytes=0,
    )
