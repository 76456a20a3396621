"""Train, Runs and Model pages driven by the scripted fake engine (hardware faked only at pynvml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from engine.light import config as run_config
from engine.light import protocol
from gui.app_state import AppState
from tests import fake_nvml

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


def _is(kind, **fields):
    """A check for waitSignal: a protocol message of this type with these field values."""
    return lambda msg: isinstance(msg, kind) and all(getattr(msg, k) == v for k, v in fields.items())


@pytest.fixture
def state(home, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n')
    app_state = AppState(str(home))
    app_state.set_config(run_config.from_mapping({"dataset": str(data)}))
    return app_state


def test_train_page_runs_pauses_and_finishes(qtbot, state, home):
    """Pause ends the engine at a checkpoint (the GPU is free); Resume starts a new one from there, and the curve,
    the step count and the log go on."""
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "30", "--delay", "0.03"])
    qtbot.addWidget(page)
    assert page.buttons["Start"].isEnabled() and not page.buttons["Pause"].isEnabled()
    with qtbot.waitSignal(page.controller.sig_message, check_params_cb=_is(protocol.Progress), timeout=20_000):
        page.start()
    assert page.buttons["Pause"].isEnabled() and not page.buttons["Start"].isEnabled()
    with qtbot.waitSignal(page.controller.sig_ended, timeout=10_000) as ended:
        page.buttons["Pause"].click()
    assert not ended.args[0].crashed and not page.is_busy()
    assert page.status.text().startswith("Paused") and "the GPU is free" in page.status.text()
    assert page.buttons["Resume"].isEnabled() and not page.buttons["Pause"].isEnabled()
    assert not page.buttons["Stop"].isEnabled()
    paused_at = page.progress.value()
    assert 0 < paused_at < 30 and len(page.chart.train_points) == paused_at
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.buttons["Resume"].click()
        assert page.is_busy() and len(page.chart.train_points) == paused_at, "the curve goes on from the pause"
    assert page.status.text().startswith("Finished"), page.status.text()
    assert page.progress.maximum() == 30 and page.progress.value() == 30
    page.chart._repaint()
    assert [s for s, _ in page.chart.train_points] == list(range(1, 31)) and page.chart.eval_points == [(30, 1.0)]
    assert page.buttons["Start"].isEnabled() and not page.buttons["Resume"].isEnabled()


def test_train_page_reports_a_crash_with_the_log_tail(qtbot, state):
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "10", "--crash-at", "3"])
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.start()
    text = page.status.text()
    assert "stopped unexpectedly" in text and "exit status 137" in text
    assert "loading the fake model" in text, "the end of the run's engine.log is shown"
    assert "simulated crash" in text


def test_train_page_shows_engine_errors_with_hint(qtbot, state):
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "2", "--fail"])
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.start()
    text = page.status.text()
    assert text.startswith("Failed: ") and "ran out of memory" in text and "\n→ " in text, text
    assert "ran out of memory" in page.log.toPlainText()


def test_out_of_memory_offers_a_one_click_retry_from_the_last_checkpoint(qtbot, state):
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "2", "--fail"])
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.start()
    assert page.retry_button.isVisibleTo(page) and page.retry_button.isEnabled()
    assert page.retry_button.text() == "Retry with micro-batch 2, gradient accumulation 8"
    assert page.retry_button.toolTip() == "Resume the run from its last checkpoint with this change"
    run_dir = page.controller.run_folder.path
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.retry_button.click()
    arguments = next(line for line in page.log.toPlainText().splitlines() if line.startswith("arguments: "))
    assert json.loads(arguments.removeprefix("arguments: "))[-8:] == ["train",
        "--json", "--resume", str(run_dir), "--set", "train.micro_batch=2", "--set", "train.grad_accum=8"]


def test_start_is_refused_without_disk_space_and_asks_before_sharing_a_busy_gpu(qtbot, state, home, monkeypatch):
    import os

    import psutil

    from engine.light import disk
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "2"])
    qtbot.addWidget(page)
    real_free_bytes = disk.free_bytes
    monkeypatch.setattr(disk, "free_bytes", lambda folder: 50 * 2**20)
    page.start()
    assert not page.is_busy()
    assert "Cannot start: not enough disk space" in page.status.text() and "50 MiB is free" in page.status.text()
    monkeypatch.setattr(disk, "free_bytes", real_free_bytes)

    other = home / "runs" / "other-run"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("model: demo\n")
    (other / "lock").write_text(json.dumps({"pid": os.getpid(), "created": psutil.Process().create_time()}))
    asked = []
    page.controller.ask = lambda title, text: asked.append(text) and False
    page.start()
    assert not page.is_busy() and "the LlamaDesk run other-run" in asked[-1]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(fake_nvml.card(
        total_gib=24.0, used_gib=6.5, processes=[(4242, "game.exe", 6 * 2**30)])))
    (other / "lock").unlink()
    page.start()
    assert "other programs holding 6.0 GiB of NVIDIA GeForce RTX 4090" in asked[-1]
    page.controller.ask = lambda title, text: True
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.start()


def test_invalid_settings_are_listed_not_started(qtbot, home):
    from gui.pages.train_page import TrainPage

    page = TrainPage(AppState(str(home)), engine_command=FAKE)
    qtbot.addWidget(page)
    page.advanced.widgets["device"].setCurrentText("cpu")
    page.advanced.widgets["compute_dtype"].setCurrentText("bfloat16")
    assert "Compute precision: bfloat16 training on the CPU" in page.problems.text()  # the label, not compute_dtype
    page.start()
    text = page.status.text()
    assert "Dataset: no dataset chosen" in text and "Compute precision" in text and not page.is_busy()


def test_presets_fill_the_form_and_tooltips_document_fields(qtbot, state):
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE)
    qtbot.addWidget(page)
    page.preset.setCurrentText("Quality")
    assert page.basic.widgets["lora.rank"].value() == 64 and state.config.lora.rank == 64
    assert "LoRA rank" in page.basic.widgets["lora.rank"].toolTip()
    page.basic.widgets["lora.rank"].setValue(32)
    assert page.preset.currentText() == "Custom"


def test_runs_page_lists_cli_runs_and_opens_curves(qtbot, state, home):
    from gui.pages.runs_page import RunsPage

    run_dir = home / "runs" / "from-cli"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model: demo\ndataset: /data/facts.json\n")
    events = [{"type": "state", "state": "training"},
              {"type": "progress", "step": 2, "total_steps": 4, "epoch": 0.5, "loss": 1.5, "elapsed_s": 30.0},
              {"type": "state", "state": "stopped"}]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    (run_dir / "checkpoints" / "step-2").mkdir(parents=True)
    page = RunsPage(state)
    qtbot.addWidget(page)
    assert page.table.rowCount() == 1
    assert page.table.item(0, 1).text() == "stopped" and page.table.item(0, 3).text() == "facts.json"
    page.table.selectRow(0)
    assert page.buttons["Resume"].isEnabled() and not page.buttons["Chat"].isEnabled()
    with qtbot.waitSignal(page.sig_open_run) as opened:
        page.buttons["Open"].click()
    assert opened.args[0].folder.loss_points()[0] == [(1, 2.0), (2, 1.5)]


def test_model_page_fit_badges_against_a_faked_rtx_4090(qtbot, state, monkeypatch):
    from gui.pages.model_page import ModelPage

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(fake_nvml.card(total_gib=24.0, used_gib=4.0)))
    state.gpu.refresh()
    page = ModelPage(state)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: "RTX 4090" in page.gpu.text(), timeout=5_000)
    from gui.pages.train_page import TrainPage

    train = TrainPage(state, engine_command=FAKE)
    qtbot.addWidget(train)
    state.gpu.refresh()
    qtbot.waitUntil(lambda: "RTX 4090: 20.0 GiB free of 24.0 GiB (driver 560.35.03, compute capability 8.9)"
                    in train.gpu_label.text(), timeout=5_000)
    badges = {page.table.item(r, 0).text(): page.table.item(r, 7).text() for r in range(page.table.rowCount())}
    assert badges["Llama 3.2 1B"] == "fits" and badges["Llama 3.1 70B"] == "won't fit"
    page.table.selectRow(3)
    assert state.config.model == page.specs[2].key


def test_model_page_without_a_gpu(qtbot, state, monkeypatch):
    from gui.pages.model_page import ModelPage

    broken = fake_nvml.module(init_error=fake_nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    state.gpu.refresh()
    page = ModelPage(state)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: "No NVIDIA GPU found" in page.gpu.text(), timeout=5_000)
    assert page.table.item(1, 7).text() == "no GPU"


def test_memory_panel_breakdown_and_one_click_fix(qtbot, home, monkeypatch):
    from gui.pages.train_page import TrainPage

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(fake_nvml.card(total_gib=24.0, used_gib=2.0)))
    state = AppState(str(home))
    state.set_config(run_config.from_mapping({"dataset": "d.jsonl", "model": "llama-3.1-8b",
                                              "data": {"cutoff": 2048},
                                              "train": {"micro_batch": 8, "grad_accum": 2}}))
    page = TrainPage(state, engine_command=FAKE)
    qtbot.addWidget(page)
    panel = page.memory_panel
    state.gpu.refresh()
    qtbot.waitUntil(lambda: "won't fit" in panel.verdict.text() and "RTX 4090" in panel.verdict.text(), timeout=5_000)
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert "4-bit weights" in names and "Logits and loss (est.)" in names and names[-1] == "Total"
    buttons = panel.fix_buttons()
    assert buttons and buttons[0].text().startswith("Apply: ")
    buttons[0].click()
    assert state.config.train.micro_batch * state.config.train.grad_accum == 16
    assert "won't fit" not in panel.verdict.text()
    assert page.basic.widgets["train.micro_batch"].value() == state.config.train.micro_batch
