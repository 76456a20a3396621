"""Putting a finished export under its name without ever losing an earlier one or touching what is not ours.

An export is built in ``<name>.partial`` beside its folder (same filesystem, so every move is one rename). A verified
one replaces an earlier export by a swap: the earlier folder is renamed aside to ``<name>.old-<n>``, the new one
renamed to ``<name>``, then the aside removed. A kill between the two renames leaves the earlier export whole under
the aside name; ``recover`` puts it back before anything else looks at the folder. An export that failed its
verification goes the same way to ``<name>.failed`` and the folder itself is left as it was.

Only folders recognised as ours (``export_options``: an export's report, a build's mark) are ever renamed or removed;
the caller has refused anything else before building.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from engine.light.export_options import (
    aside_folder,
    aside_folders,
    holds_our_export,
    is_empty_folder,
    is_our_build,
    partial_folder,
    target_refusal,
)


def recover(target: Path) -> None:
    """Undo what an export killed while publishing to ``target`` left: without a folder there, the earlier export it
    had set aside goes back under its name; with our export there, set-aside ones are superseded and go; so does a
    build folder of ours left half-written."""
    asides = aside_folders(target)
    if asides and not target.exists():
        asides.pop(0).rename(target)
    if holds_our_export(target):
        for aside in asides:
            shutil.rmtree(aside)
    discard_build(partial_folder(target))


def discard_build(build: Path) -> None:
    if is_our_build(build):
        shutil.rmtree(build)


def publish(build: Path, final: Path) -> bool:
    """Moves the finished ``build`` folder to ``final``, swapping out an earlier export of ours; True when it
    replaced one. Refuses (UserError) if ``final`` came to hold files we did not write since the export began."""
    if is_empty_folder(final):
        final.rmdir()
    if not final.exists():
        build.rename(final)
        return False
    refusal = target_refusal(final)
    if refusal is not None:
        raise refusal
    aside = aside_folder(final, time.time_ns())
    final.rename(aside)
    try:
        _bring_in(build, final)
    except BaseException:
        aside.rename(final)
        raise
    shutil.rmtree(aside)
    return True


def _bring_in(build: Path, final: Path) -> None:
    # The one moment the name is free: the earlier export is aside, the new one not yet in place (see recover).
    build.rename(final)
