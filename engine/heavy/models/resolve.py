"""One way to name a model everywhere (CLI, configs, GUI): "demo", a catalog key, a Hugging Face id or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.heavy.models import demo_model, hub
from engine.light import catalog
from engine.light.errors import ModelSourceError
from engine.light.model_folder import ModelFolder, inspect_folder

DEMO = "demo"


def hub_id_for(reference: str, *, instruct: bool = True) -> str | None:
    """The hub id a reference stands for, or None for "demo" and local folders."""
    if reference == DEMO or Path(reference).expanduser().exists():
        return None
    spec = catalog.find(reference)
    if spec is not None:
        return (spec.instruct_hub_id or spec.hub_id) if instruct else spec.hub_id
    if reference.count("/") == 1:
        return reference
    raise ModelSourceError(
        f"unknown model '{reference}'",
        hint="use 'demo', a catalog key from 'llamadesk-engine models', a Hugging Face id or a local folder",
        kind="unknown",
    )


def model_folder(reference: str, *, progress: Callable[[str], None] = print, allow_pickle: bool = False,
                 instruct: bool = True) -> ModelFolder:
    """A validated local folder for the model, downloading or preparing it first if needed."""
    if reference == DEMO:
        return inspect_folder(demo_model.ensure_demo_model(progress))
    repo_id = hub_id_for(reference, instruct=instruct)
    if repo_id is None:
        return inspect_folder(reference, allow_pickle=allow_pickle)

    def on_progress(event: hub.ProgressEvent) -> None:
        if event["total"]:
            progress(f"{event['file']}: {event['done'] / event['total']:.0%}")

    return inspect_folder(hub.download(repo_id, progress=on_progress), allow_pickle=allow_pickle)


def load_tokenizer(reference: str, *, progress: Callable[[str], None] = print):
    """The model's tokenizer. For hub models only the tokenizer files are fetched, not the weights."""
    from engine.heavy.models import tokenizer as tokenizers

    if reference == DEMO:
        folder = str(demo_model.ensure_demo_model(progress))
    else:
        repo_id = hub_id_for(reference)
        folder = reference if repo_id is None else hub.download(repo_id, patterns=hub.TOKENIZER_PATTERNS)
    try:
        return tokenizers.load(folder, trust_remote_code=False)
    except Exception as exc:
        raise ModelSourceError(f"could not load the tokenizer: {exc}", where=str(folder),
                               hint="check that the tokenizer files are complete", kind="no_tokenizer") from None
