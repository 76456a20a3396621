"""Downloading models from the Hugging Face hub into the standard HF cache, with progress and clear errors.

huggingface_hub resumes interrupted downloads by itself, so cancelling (stopping the engine process) loses nothing.
Only what LlamaDesk can use is fetched: safetensors weights, configs and tokenizer files, never pickle weights.
"""

from __future__ import annotations

from typing import Callable

from engine.light.errors import ModelSourceError
from engine.light.hf_token import get_token, redact

MODEL_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt"]
TOKENIZER_PATTERNS = ["*.json", "*.jinja", "tokenizer.model", "*.txt"]

ProgressEvent = dict  # {"file": str, "done": int, "total": int | None}


def download(repo_id: str, *, progress: Callable[[ProgressEvent], None] | None = None,
             patterns: list[str] | None = None, token: str | None = None) -> str:
    """Download (or find in the cache) a model snapshot; returns its local folder."""
    from huggingface_hub import errors, snapshot_download

    token = token or get_token()
    try:
        return snapshot_download(
            repo_id,
            allow_patterns=patterns or MODEL_PATTERNS,
            token=token or None,
            tqdm_class=_progress_class(progress) if progress else None,
        )
    except errors.GatedRepoError:
        raise ModelSourceError(
            "this model is gated: its license must be accepted and a token given",
            where=repo_id,
            hint=f"accept the license at https://huggingface.co/{repo_id}, then enter a Hugging Face access token "
            "(kept in your system keyring)",
            kind="gated",
        ) from None
    except errors.RepositoryNotFoundError:
        raise ModelSourceError(
            "no such model on the Hugging Face hub (or it is private)",
            where=repo_id,
            hint="check the id (for example meta-llama/Llama-3.2-1B-Instruct), or enter a token if it is private",
            kind="not_found",
        ) from None
    except errors.LocalEntryNotFoundError:
        raise ModelSourceError(
            "the Hugging Face hub cannot be reached and the model is not in the local cache",
            where=repo_id,
            hint="connect to the internet and try again (finished files are kept, the download resumes), "
            "or use a local model folder",
            kind="offline",
        ) from None
    except errors.HfHubHTTPError as exc:
        raise ModelSourceError(redact(f"the hub refused the download: {exc}", token), where=repo_id,
                               hint="check your token and try again", kind="http") from None
    except OSError as exc:
        raise ModelSourceError(f"could not write the download: {exc.strerror or exc}", where=repo_id,
                               hint="free disk space or check permissions of the Hugging Face cache folder",
                               kind="disk") from None


def _progress_class(callback: Callable[[ProgressEvent], None]):
    from tqdm.auto import tqdm

    class _Forwarding(tqdm):
        """A silent tqdm that forwards each update to ``callback`` (huggingface_hub drives it per file)."""

        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = _Null()
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            result = super().update(n)
            callback({"file": str(self.desc or ""), "done": int(self.n), "total": self.total})
            return result

    return _Forwarding


class _Null:
    def write(self, *_):
        pass

    def flush(self):
        pass
