"""What an export makes, where, and how much disk it needs, and which folders beside it are LlamaDesk's own: shared
by ``llamadesk-engine export`` and the Export dialog. Torch-free, so the window can size and check an export before
starting it.

An export owns its folder and three kinds of siblings: ``<name>.partial`` while it is written, ``<name>.failed`` for
one that did not verify, and ``<name>.old-<n>`` for the earlier export while the new one takes its name. A folder is
recognised as an export by its report (``verification.json``), which lists every file the export wrote; a folder
being written, by its building mark. Nothing else is ever replaced or removed.
"""

from __future__ import annotations

import glob
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.light import paths
from engine.light.errors import UserError

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
REPORT = "verification.json"  # written last into every export: it marks the folder as one
BUILDING = ".llamadesk-export-building"  # in a .partial folder from its first moment until its report is written


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
        return paths.home() / "exports" / self.default_name(run_name)

    def default_name(self, run_name: str) -> str:
        return f"{run_name}-{self.format}" + (f"-{self.quant}" if self.makes_gguf else "")

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


# ---- the export folder and its siblings -------------------------------------------------------------------------

def partial_folder(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def failed_folder(target: Path) -> Path:
    return target.with_name(target.name + ".failed")


def aside_folder(target: Path, number: int) -> Path:
    return target.with_name(f"{target.name}.old-{number}")


def aside_folders(target: Path) -> list[Path]:
    """Earlier exports set aside while a new one took their name, newest first (only those with our report)."""
    found = []
    for folder in target.parent.glob(glob.escape(target.name) + ".old-*"):
        number = folder.name.rsplit(".old-", 1)[1]
        if number.isdigit() and holds_our_export(folder):
            found.append((int(number), folder))
    return [folder for _, folder in sorted(found, reverse=True)]


def read_report(folder: Path) -> dict | None:
    """The export report in ``folder``, or None when there is none of ours (absent, unreadable or not one)."""
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (isinstance(report, dict) and isinstance(report.get("run"), str) and report.get("format") in FORMATS
            and isinstance(report.get("passed"), bool)):
        return report
    return None


def foreign_files(folder: Path) -> list[str]:
    """The names in ``folder`` that no export of ours wrote (all of them when it holds no export)."""
    if not folder.is_dir():
        return [folder.name] if folder.exists() else []
    names = sorted(p.name for p in folder.iterdir())
    report = read_report(folder)
    if report is None:
        return names
    if not isinstance(report.get("files"), list):
        return []  # an export written before reports listed their files: the report alone marks it
    ours = {REPORT, *report["files"]}
    return [name for name in names if name not in ours]


def holds_our_export(folder: Path) -> bool:
    return folder.is_dir() and read_report(folder) is not None and not foreign_files(folder)


def is_our_build(folder: Path) -> bool:
    """A .partial folder an export of ours was writing (its mark), or finished writing (its report)."""
    return folder.is_dir() and ((folder / BUILDING).is_file() or holds_our_export(folder))


def is_empty_folder(folder: Path) -> bool:
    return folder.is_dir() and not any(folder.iterdir())


def earlier_export(target: Path) -> Path | None:
    """Where the export a new one would replace is: the folder itself, or, after an export was killed while
    replacing it, the earlier export it had set aside (the next export puts it back first)."""
    if holds_our_export(target):
        return target
    if not target.exists():
        return next(iter(aside_folders(target)), None)
    return None


def target_refusal(target: Path, suggestion: str = "") -> UserError | None:
    """Why an export must not be written to ``target`` (None when it may): the folder, or a sibling an export
    would replace, holds files LlamaDesk did not write. Such a folder is never replaced, emptied or renamed."""
    elsewhere = "choose an empty or new folder, or a sub-folder"
    if target.exists() and not target.is_dir():
        return UserError("this is a file, not a folder: an export is a folder", where=str(target),
                         hint=elsewhere, kind="not_ours")
    try:
        foreign = foreign_files(target)
    except OSError as exc:  # what cannot be read cannot be shown to be ours
        return UserError(f"this folder cannot be read ({exc.strerror or exc})", where=str(target),
                         hint="choose another folder", kind="not_ours")
    if foreign and read_report(target) is not None:
        return UserError(f"the earlier export here also holds files LlamaDesk did not write ({_listed(foreign)}), "
                         "so it is not replaced", where=str(target),
                         hint="move those files out of it, or choose another folder", kind="not_ours")
    if foreign:
        return UserError(f"this folder holds files LlamaDesk did not write ({_listed(foreign)}); an export is "
                         "never written over them", where=str(target), kind="not_ours",
                         hint=elsewhere + (f" (for example {target / suggestion})" if suggestion else ""))
    for sibling, role, ours in ((failed_folder(target), "a failed export would be kept", holds_our_export),
                                (partial_folder(target), "the export would be written", is_our_build)):
        if sibling.exists() and not is_empty_folder(sibling) and not ours(sibling):
            return UserError(f"{role} in {sibling.name}, which holds files LlamaDesk did not write",
                             where=str(sibling), hint=f"rename or move {sibling.name}, or choose another folder",
                             kind="not_ours")
    return None


def _listed(names: list[str], shown: int = 3) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
