"""Runs the engine (same arguments as ``python -m engine``) so that the comparison with the base model holds before
its second prompt's answers until the client has asked to skip it (or 120 s pass): a test can skip "after the first
prompt" without racing a tiny model that answers in milliseconds."""

from __future__ import annotations

import sys
import time

from engine.heavy import before_after
from engine.heavy.control import Control

WAIT_S = 120.0
_controls: list[Control] = []
_init = Control.__init__
_greedy = before_after._greedy
_calls = [0]


def _remembered_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    _controls.append(self)


def _held_greedy(*args, **kwargs):
    _calls[0] += 1
    if _calls[0] == 3:  # the first answer to the second prompt (each prompt is answered twice: base, fine-tune)
        deadline = time.monotonic() + WAIT_S
        while not any(c.skip_comparison.is_set() for c in _controls) and time.monotonic() < deadline:
            time.sleep(0.02)
    return _greedy(*args, **kwargs)


Control.__init__ = _remembered_init
before_after._greedy = _held_greedy

from engine.cli import main  # noqa: E402 - after the patch

sys.exit(main(sys.argv[1:]))
