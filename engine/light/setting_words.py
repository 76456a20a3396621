"""A config problem in the words of the window: each setting named by its label, as the form shows it, instead of its
dotted path ("Epochs: must be above 0 when Max steps is 0" for "train.epochs: must be above 0 when
train.max_steps is 0"). The command line keeps the dotted paths, which is what ``--set`` takes."""

from __future__ import annotations

import re

from engine.light.config import BY_PATH

# A dotted path is replaced wherever it stands; a top-level name ("compute_dtype") only where the line names its
# setting, before the first colon, since words like "model" or "dataset" also occur in plain sentences.
_DOTTED = re.compile(r"(?<![\w.])(" + "|".join(
    re.escape(path) for path in sorted((p for p in BY_PATH if "." in p), key=len, reverse=True)) + r")(?![\w.])")
_HEAD = re.compile(r"^(\s*)([A-Za-z_]\w*)(?=:)")


def label(path: str) -> str:
    """A setting's label, or the path itself for a name that is no setting."""
    found = BY_PATH.get(path)
    return found.label if found is not None else path


def in_words(problem: str) -> str:
    """``problem`` with every dotted path that names a setting, and a top-level setting naming the line, replaced by
    its label."""
    text = _DOTTED.sub(lambda m: label(m.group(1)), problem)
    return _HEAD.sub(lambda m: m.group(1) + label(m.group(2)), text, count=1)
