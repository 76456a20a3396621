"""The desktop app with the real engine: Start on the Train page runs to a finished run on a tiny model, the Runs
page lists it, and the Chat page gets a streamed reply from its adapter."""

from __future__ import annotations

import pytest

from engine.light import config as run_config
from engine.light import protocol
from gui.app_state import AppState


@pytest.mark.slow
def test_start_to_finished_run_and_a_chat_reply(qtbot, home, tiny_model, small_dataset):
    from gui.pages.chat_page import ChatPage
    from gui.pages.runs_page import RunsPage
    from gui.pages.train_page import TrainPage

    state = AppState(str(home))
    state.set_config(run_config.from_mapping({
        "model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none", "run_name": "gui-run",
        "data": {"validation_share": 0.1}, "train": {"max_steps": 3, "save_steps": 2},
    }))
    train = TrainPage(state)
    runs = RunsPage(state)
    chat = ChatPage(state)
    for widget in (train, runs, chat):
        qtbot.addWidget(widget)
    finished = []
    train.controller.sig_message.connect(lambda m: finished.append(m) if isinstance(m, protocol.Finished) else None)
    with qtbot.waitSignal(train.controller.sig_ended, timeout=180_000) as ended:
        train.start()
    assert not ended.args[0].crashed and ended.args[0].exit_code == 0, ended.args[0].output_tail
    assert finished and finished[0].run_dir.endswith("gui-run")
    assert train.progress.value() == 3 and len(train.chart.train_points) == 3
    names = [runs.table.item(r, 0).text() for r in range(runs.table.rowCount())]
    statuses = [runs.table.item(r, 1).text() for r in range(runs.table.rowCount())]
    assert ("gui-run", "finished") in set(zip(names, statuses))

    assert chat.select_run("gui-run")
    chat.load()
    qtbot.waitUntil(chat.is_ready, timeout=180_000)
    tokens = []
    chat.client.sig_chat_token.connect(lambda t: tokens.append(t.text))
    chat.sampling["max_new_tokens"].setValue(5)
    chat.sampling["temperature"].setValue(0.0)
    with qtbot.waitSignal(chat.client.sig_chat_done, timeout=120_000) as done:
        assert chat.send_message("Who keeps the lighthouse?")
    assert done.args[0].tokens > 0 and tokens
    assert "".join(tokens) in chat.left_pane.transcript.toPlainText()
    chat.shutdown()
    qtbot.waitUntil(lambda: not chat.client.is_running(), timeout=30_000)
