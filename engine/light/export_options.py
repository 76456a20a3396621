"""What an export makes, where, and how much disk it needs: shared by ``llamadesk-engine export`` and the Export
dialog. Torch-free, so the window can size an export before starting it."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.light import paths

FORMATS = {
    "merged": "Merged Hugging Face model (16-bit safetensors, tokenizer, chat template)",
    "gguf": "GGUF for llama.cpp and LM Studio",
    "ollama": "Ollama (GGUF with a Modelfile)",
    "adapter": "The LoRA adapter alone (PEFT)",
}
QUANTS = {"f16": "F16 (largest, exact)", "q8_0": "Q8_0 (half the size, nearly exact)",
          "q4_k_m": "Q4_K_M (a quarter, small loss)"}
MERGE_INTO = {"trained": "the 4-bit weights it was trained against (answers exactly as the fine-tune)",
              "original": "the original 16-bit weights (which the adapter never saw)"}
# Bytes per parameter of each file: 16 bits; Q8_0's 8 bits and a 16-bit scale per 32 values; Q4_K_M's mix of 4.5-
# and 6.6-bit blocks (about 4.9 bits per weight on LLaMA shapes).
BYTES_PER_PARAM = {"merged": 2.0, "f16": 2.0, "q8_0": 34 / 32, "q4_k_m": 4.9 / 8}
MARGIN = 256 * 2**20


@dataclass(frozen=True)
class ExportOptions:
    format: str = "gguf"
    quant: str = "q4_k_m"  # for gguf and ollama
    merge_into: str = "trained"
    system: str = ""  # ollama: the Modelfile's SYSTEM prompt
    out: Path | None = None  # the export folder; default: <home>/exports/<run>-<format>[-<quant>]

    def problems(self) -> list[str]:
        found = []
        if self.format not in FORMATS:
            found.append(f"format: '{self.format}' is not one of {', '.join(FORMATS)}")
        if self.quant not in QUANTS:
            found.append(f"quant: '{self.quant}' is not one of {', '.join(QUANTS)}")
        if self.merge_into not in MERGE_INTO:
            found.append(f"merge_into: '{self.merge_into}' is not one of {', '.join(MERGE_INTO)}")
        return found

    @property
    def makes_gguf(self) -> bool:
        return self.format in ("gguf", "ollama")

    def folder_for(self, run_name: str) -> Path:
        if self.out is not None:
            return Path(self.out).expanduser()
        suffix = f"-{self.quant}" if self.makes_gguf else ""
        return paths.home() / "exports" / f"{run_name}-{self.format}{suffix}"

    def gguf_name(self, run_name: str) -> str:
        return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', run_name)}-{self.quant}.gguf"


def parameter_count(model_dir: Path) -> int:
    """The model's parameter count, read from its safetensors headers (no weights are loaded)."""
    total = 0
    for file in Path(model_dir).glob("*.safetensors"):
        with open(file, "rb") as handle:
            header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for n in entry["shape"]:
                    count *= n
                total += count
    return total


def needed_bytes(parameters: int, options: ExportOptions, adapter_bytes: int) -> int:
    """Disk space the export needs while it runs: its files, and for GGUF the merged model it converts from."""
    if options.format == "adapter" or not parameters:
        return adapter_bytes + MARGIN
    merged = int(parameters * BYTES_PER_PARAM["merged"])
    if not options.makes_gguf:
        return merged + MARGIN
    return merged + int(parameters * BYTES_PER_PARAM[options.quant]) + MARGIN
