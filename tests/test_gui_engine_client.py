"""EngineClient drives a scripted fake engine: typed signals, commands, staged stop, crash reporting."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.light import protocol
from gui.engine_client import EngineClient, EngineState

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


def _client(qtbot):
    client = EngineClient(command=FAKE)
    return client


def test_progress_and_finish_signals(qtbot, home):
    client = _client(qtbot)
    progress = []
    client.sig_progress.connect(progress.append)
    with qtbot.waitSignal(client.sig_exited, timeout=20_000) as exited:
        client.start(["--steps", "4", "--noise", "train"], home=str(home))
    outcome = exited.args[0]
    assert outcome.ok and outcome.last_state == "finished"
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert client.malformed_lines == 1  # the noise line was counted, not fatal
    assert client.state == EngineState.EXITED


def test_pause_ends_the_engine_cleanly_and_stop_saves(qtbot, home):
    client = _client(qtbot)
    states = []
    client.sig_state.connect(lambda s: states.append(s.state))
    with qtbot.waitSignal(client.sig_progress, timeout=20_000):
        client.start(["--steps", "400", "--delay", "0.02", "train"], home=str(home))
    with qtbot.waitSignal(client.sig_exited, timeout=10_000) as paused:
        client.send(protocol.Pause())
    assert paused.args[0].ok and not paused.args[0].crashed and states[-1] == "paused"
    with qtbot.waitSignal(client.sig_progress, timeout=20_000):
        client.start(["--steps", "400", "--delay", "0.02", "train"], home=str(home))
    with qtbot.waitSignal(client.sig_exited, timeout=20_000) as exited:
        client.stop()
    assert exited.args[0].ok and states[-1] == "stopped"


def test_crash_is_reported_with_stderr_tail(qtbot, home):
    client = _client(qtbot)
    with qtbot.waitSignal(client.sig_exited, timeout=20_000) as exited:
        client.start(["--steps", "5", "--crash-at", "3", "train"], home=str(home))
    outcome = exited.args[0]
    assert outcome.crashed and outcome.exit_code == 137 and "simulated crash" in outcome.stderr_tail


def test_engine_that_cannot_start(qtbot):
    client = EngineClient(command=["/nonexistent/engine-binary"])
    with qtbot.waitSignal(client.sig_exited, timeout=10_000) as exited:
        client.start(["train"])
    assert exited.args[0].crashed and "could not start" in exited.args[0].stderr_tail


def test_chat_tokens_and_cancel(qtbot):
    client = _client(qtbot)
    tokens = []
    client.sig_chat_token.connect(lambda t: tokens.append(t.text))
    with qtbot.waitSignal(client.sig_state, check_params_cb=lambda s: s.state == "ready", timeout=20_000):
        client.start(["chat"])
    with qtbot.waitSignal(client.sig_chat_done, timeout=10_000) as done:
        client.send(protocol.Chat("1", [{"role": "user", "content": "<b>hello</b>"}]))
    assert done.args[0].reason == "end" and "".join(tokens) == "[on] You said: <b>hello</b>"
    with qtbot.waitSignal(client.sig_exited, timeout=10_000):
        client.send(protocol.Shutdown())
