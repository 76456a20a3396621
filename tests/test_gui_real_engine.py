"""The desktop app with the real engine: Start on the Train page runs to a finished run on a tiny model, the Runs
page lists it, and the Chat page gets a streamed reply from its adapter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.light import config as run_config
from engine.light import protocol
from engine.light.run_folder import RunFolder
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


@pytest.mark.slow
def test_out_of_memory_then_one_click_retry_with_the_real_engine(qtbot, home, tiny_model, small_dataset,
                                                                 monkeypatch):
    """The engine runs out of memory at step 3 with micro-batch 4; the Retry button resumes from the checkpoint of
    step 2 with the engine's proposal (micro-batch 2, accumulation doubled), and the run finishes."""
    from gui.pages.train_page import TrainPage

    monkeypatch.setenv("LLAMADESK_TEST_OOM_STEP", "3")
    monkeypatch.setenv("LLAMADESK_TEST_OOM_ABOVE", "2")
    harness = [sys.executable, str(Path(__file__).with_name("out_of_memory_at.py"))]
    state = AppState(str(home))
    state.set_config(run_config.from_mapping({
        "model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none", "run_name": "oom-gui",
        "data": {"validation_share": 0.0}, "train": {"max_steps": 5, "save_steps": 1, "micro_batch": 4,
                                                     "grad_accum": 1}}))
    page = TrainPage(state, engine_command=harness)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.controller.sig_ended, timeout=180_000):
        page.start()
    assert "ran out of memory at step 3" in page.status.text()
    assert page.retry_button.isVisibleTo(page) and page.retry_button.isEnabled()
    assert page.retry_button.text() == "Retry with micro-batch 2, gradient accumulation 2"
    with qtbot.waitSignal(page.controller.sig_ended, timeout=180_000) as ended:
        page.retry_button.click()
    assert not ended.args[0].crashed and page.status.text().startswith("Finished"), page.status.text()
    folder = RunFolder(home / "runs" / "oom-gui")
    config = folder.load_config()
    assert (config.train.micro_batch, config.train.grad_accum) == (2, 2)
    assert [m["step"] for m in folder.metrics() if "loss" in m] == [1, 2, 3, 4, 5]
    assert folder.has_adapter


@pytest.mark.slow
def test_compare_answers_with_and_without_the_adapter_with_the_real_engine(qtbot, home, tiny_model, small_dataset):
    from gui.pages.chat_page import ChatPage

    config = run_config.from_mapping({
        "model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none", "run_name": "compare",
        "data": {"validation_share": 0.0}, "train": {"max_steps": 6, "learning_rate": 5e-2}})
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    chat = ChatPage(AppState(str(home)))
    qtbot.addWidget(chat)
    assert chat.select_run("compare")
    chat.load()
    qtbot.waitUntil(chat.is_ready, timeout=180_000)
    chat.compare_box.setChecked(True)
    assert chat.right_pane.isVisibleTo(chat)
    chat.sampling["max_new_tokens"].setValue(6)
    chat.sampling["temperature"].setValue(0.0)
    assert chat.send_message("Who keeps the lighthouse?")
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=120_000)
    tuned, base = (pane.transcript.history() for pane in (chat.left_pane, chat.right_pane))
    assert [m["role"] for m in tuned] == [m["role"] for m in base] == ["user", "assistant"]
    assert tuned[1]["content"] and base[1]["content"] and tuned[1]["content"] != base[1]["content"]
    chat.shutdown()
    qtbot.waitUntil(lambda: not chat.client.is_running(), timeout=30_000)
