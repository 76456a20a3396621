"""The app and a training engine live apart: a restarted app follows a run it did not start and controls it, and
closing the window can leave a run training. Real engine processes on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from engine.light import protocol, run_folder
from engine.light.run_folder import RunFolder
from gui.app_state import AppState


def _engine_args(tiny_model, small_dataset, name: str) -> list[str]:
    return ["--set", f"model={tiny_model}", "--set", f"dataset={small_dataset}", "--set", "quantization=none",
            "--set", "train.max_steps=100000", "--set", "train.save_steps=10", "--set", "data.validation_share=0",
            "--set", f"run_name={name}"]


def _wait_progress(run_dir, beyond: int = 0, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [e["step"] for e in run_folder.read_jsonl(run_dir / "events.jsonl") if e.get("type") == "progress"]
        if steps and steps[-1] > beyond:
            return steps[-1]
        time.sleep(0.1)
    raise AssertionError("no progress")


@pytest.mark.slow
def test_a_restarted_app_follows_a_running_run_and_controls_it(qtbot, home, tmp_path, tiny_model, small_dataset):
    engine = subprocess.Popen([sys.executable, "-m", "engine", "train", *_engine_args(tiny_model, small_dataset,
                                                                                     "earlier")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, LLAMADESK_HOME=str(home)))
    run_dir = home / "runs" / "earlier"
    window = None
    try:
        _wait_progress(run_dir)
        QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
        QApplication.instance().setOrganizationName("LlamaDesk-tests")
        from gui.main_window import MainWindow

        window = MainWindow(AppState(str(home)))
        qtbot.addWidget(window)
        page = window.train_page
        assert window.current_page() is page and not page.controller.session.owns_engine()
        assert f"process {engine.pid}" in page.log.toPlainText()
        assert not page.buttons["Start"].isEnabled() and page.buttons["Pause"].isEnabled()
        shown = page.progress.value()
        qtbot.waitUntil(lambda: page.progress.value() > shown + 2, timeout=30_000)  # live, from the run folder
        qtbot.waitUntil(lambda: len(page.chart.train_points) >= page.progress.value() - 1, timeout=10_000)

        # Pause through the run folder: the engine started elsewhere saves a checkpoint and exits.
        with qtbot.waitSignal(page.controller.sig_ended, timeout=60_000) as ended:
            page.buttons["Pause"].click()
        assert not ended.args[0].crashed and engine.wait(timeout=30) == 0
        assert page.status.text().startswith("Paused") and not page.is_busy()
        assert page.buttons["Resume"].isEnabled() and not page.buttons["Pause"].isEnabled()
        points = len(page.chart.train_points)
        # Resume: this window starts the engine again, from the checkpoint, and the view goes on.
        page.buttons["Resume"].click()
        assert page.controller.session.owns_engine() and len(page.chart.train_points) == points
        qtbot.waitUntil(lambda: page.status.text().startswith("Training"), timeout=60_000)
        page.buttons["Stop"].click()
        assert not page.buttons["Stop"].isEnabled()
        with qtbot.waitSignal(page.controller.sig_ended, timeout=60_000):
            pass
        assert page.status.text().startswith("Stopped") and not page.is_busy()
        steps = [s for s, _ in page.chart.train_points]
        assert steps == sorted(set(steps)) and len(steps) > points
        assert not page.buttons["Pause"].isEnabled() and not page.buttons["Stop"].isEnabled()
        assert RunFolder(run_dir).checkpoints()
    finally:
        engine.kill()
        if window is not None and window.train_page.is_busy():  # a failed check must not leave a window engine
            window.train_page.controller.kill()
            window.train_page.controller.session.wait_for_exit(10_000)


# A whole app session: start training, close the window choosing to keep training, exit as the app does.
SESSION = """
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from engine.light import config as run_config
from engine.light.run_folder import RunFolder
from gui import app as app_module
from gui import bootstrap
from gui.app_state import AppState
from gui.main_window import MainWindow

app = bootstrap.application()
window = MainWindow(AppState())
window.state.set_config(run_config.from_mapping(json.loads(sys.argv[1])))
window.train_page.start()
while window.train_page.progress.value() < 1:
    app.processEvents()

def answer():
    box = QApplication.activeModalWidget()
    if not isinstance(box, QMessageBox):
        return QTimer.singleShot(20, answer)
    next(b for b in box.buttons() if b.text() == "Keep training in the background").click()

QTimer.singleShot(0, answer)
window.close()
print(window.train_page.controller.session.client.pid(), flush=True)
app_module.leave(window, 0)
"""


@pytest.mark.slow
def test_closing_the_window_can_keep_the_run_training(home, tmp_path, tiny_model, small_dataset):
    config = {"model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none", "run_name": "bg",
              "data": {"validation_share": 0}, "train": {"max_steps": 100000, "save_steps": 10}}
    env = dict(os.environ, LLAMADESK_HOME=str(home), QT_QPA_PLATFORM="offscreen",
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    session = subprocess.run([sys.executable, "-c", SESSION, json.dumps(config)], capture_output=True, text=True,
                             env=env, timeout=180)
    assert session.returncode == 0, session.stderr[-2000:]
    engine = psutil.Process(int(session.stdout.split()[-1]))
    try:
        run_dir = home / "runs" / "bg"
        step = _wait_progress(run_dir)
        _wait_progress(run_dir, beyond=step + 3)  # still training after the app is gone
        assert RunFolder(run_dir).lock_holder() == engine.pid
        RunFolder(run_dir).send_command(protocol.Stop())
        engine.wait(timeout=60)
        assert run_folder.read_jsonl(run_dir / "events.jsonl")[-1]["state"] == "stopped"
    finally:
        if engine.is_running():
            engine.kill()
