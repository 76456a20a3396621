"""Runs the engine (same arguments as ``python -m engine``) with one adapter-weights file written half-way and then
held there: the write whose target path contains $LLAMADESK_TEST_HOLD_AT stops after half its bytes are on disk, and
$LLAMADESK_TEST_HOLD_MARKER appears. A test then kills the process at that known point inside the write."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import peft.peft_model

HOLD_AT = os.environ["LLAMADESK_TEST_HOLD_AT"]
MARKER = Path(os.environ["LLAMADESK_TEST_HOLD_MARKER"])
_save = peft.peft_model.safe_save_file


def _held_save(tensors, filename, metadata=None):
    if HOLD_AT not in str(filename):
        return _save(tensors, filename, metadata=metadata)
    with tempfile.TemporaryDirectory() as scratch:  # the complete file, to copy half of it
        _save(tensors, os.path.join(scratch, "full"), metadata=metadata)
        data = Path(scratch, "full").read_bytes()
    with open(filename, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
        MARKER.write_text(f"{filename}: {len(data) // 2} of {len(data)} bytes written\n")
        time.sleep(3600)  # killed here


peft.peft_model.safe_save_file = _held_save

from engine.cli import main  # noqa: E402 - after the patch, so the engine writes through it

sys.exit(main(sys.argv[1:]))
