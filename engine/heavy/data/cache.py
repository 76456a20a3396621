"""Tokenized datasets cached by content and settings, so a second run with the same inputs skips tokenization."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

# Bump when the pipeline's output changes for the same inputs, so stale caches are not reused.
PIPELINE_VERSION = 3  # 2: best-fit-decreasing packing; 3: the validation split keeps its prompts as messages


def source_fingerprint(source: str) -> str:
    path = Path(source).expanduser()
    digest = hashlib.sha256()
    if path.is_file():
        _hash_file(path, digest)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            _hash_file(file, digest)
    else:
        digest.update(f"hub:{source}".encode())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    digest = hashlib.sha256()
    facts = {
        "class": type(tokenizer).__name__,
        "vocab": len(tokenizer),
        "template": tokenizer.chat_template,
        "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
    }
    digest.update(json.dumps(facts, sort_keys=True).encode())
    # The vocabulary and merges themselves, whatever folder they were loaded from.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    return digest.hexdigest()


def key(source: str, source_hash: str, tokenizer_hash: str, settings: dict) -> str:
    """The same bytes under another name or extension can read differently (.jsonl vs .txt), so the path counts."""
    where = str(Path(source).expanduser().resolve()) if Path(source).expanduser().exists() else source
    payload = json.dumps([PIPELINE_VERSION, where, source_hash, tokenizer_hash, settings], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def lookup(root: Path, cache_key: str) -> Path | None:
    folder = root / cache_key
    return folder if (folder / "summary.json").is_file() else None


def store(root: Path, cache_key: str, write) -> Path:
    """Write into a temporary folder with ``write(folder)`` and rename it into place when complete."""
    final = root / cache_key
    tmp = root / f".{cache_key}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _hash_file(path: Path, digest) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
