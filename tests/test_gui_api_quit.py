"""Quitting while the API model streams: the Chat page's reply and the Runs page's batch comparison both stop, their
threads end, nothing is called on a deleted page, and the process exits cleanly, under QT_FATAL_WARNINGS=1 (any Qt
warning, a QThread destroyed while running among them, aborts). The scenario is tests/api_quit_driver.py, run in a
process of its own so that an abort or a hang is seen here as one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quitting_while_a_reply_and_a_batch_comparison_stream(home):
    started = __import__("time").monotonic()
    done = subprocess.run([sys.executable, "-m", "tests.api_quit_driver", str(home)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env=dict(os.environ, QT_FATAL_WARNINGS="1"))
    took = __import__("time").monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result, f"{took:.1f} s")
    assert result["streaming"] and result["pieces_before_quit"] >= 3 and result["requests"] == 2  # both were streaming
    assert result["threads_ended"] and result["running_threads"] == 0 and result["quit_s"] < 5
    assert result["calls"] > 0 and result["calls_on_deleted"] == []  # the probes saw the streaming, not after it
    assert result["errors"] == [] and "Traceback" not in done.stderr and "QThread" not in done.stderr, done.stderr
    assert not result["evaluation_has_api"]  # stopped before its first answer: nothing half-done was written
