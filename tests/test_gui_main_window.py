"""The main window composes the pages, wires Runs → Train/Chat, persists its state, and asks before closing a
running training."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.light import config as run_config
from engine.light import protocol
from gui.app_state import AppState

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


def _window(qtbot, home, tmp_path, monkeypatch, fake_args=()):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.instance().setOrganizationName("LlamaDesk-tests")
    from gui.main_window import MainWindow

    window = MainWindow(AppState(str(home)), engine_command=FAKE + list(fake_args))
    qtbot.addWidget(window)
    return window


def test_pages_and_shortcut_navigation(qtbot, home, tmp_path, monkeypatch):
    window = _window(qtbot, home, tmp_path, monkeypatch)
    assert [window.sidebar.item(i).text() for i in range(window.sidebar.count())] == \
        ["Model", "Dataset", "Train", "Chat", "Runs", "Engine"]
    window.show_page("Runs")
    assert window.current_page() is window.runs_page
    shortcuts = {a.text(): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["Train"] == "Ctrl+3"


def test_state_persists_across_restarts(qtbot, home, tmp_path, monkeypatch):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n')
    window = _window(qtbot, home, tmp_path, monkeypatch)
    window.state.set_dataset(str(data))
    window.state.set_model("llama-3.2-1b")
    window.show_page("Chat")
    window.close()
    again = _window(qtbot, home, tmp_path, monkeypatch)
    assert again.state.config.dataset == str(data) and again.state.config.model == "llama-3.2-1b"
    assert again.current_page() is again.chat_page


def test_closing_during_training_asks_and_stop_saves(qtbot, home, tmp_path, monkeypatch):
    window = _window(qtbot, home, tmp_path, monkeypatch, ["--steps", "1000", "--delay", "0.02"])
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n')
    window.state.set_config(run_config.from_mapping({"dataset": str(data)}))
    with qtbot.waitSignal(window.train_page.controller.sig_message,
                          check_params_cb=lambda m: isinstance(m, protocol.Progress), timeout=20_000):
        window.train_page.start()
    states = []
    window.train_page.controller.sig_message.connect(
        lambda m: states.append(m.state) if isinstance(m, protocol.State) else None)

    def answer(button_text: str):
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, lambda: answer(button_text))
            return
        next(b for b in box.buttons() if b.text() == button_text).click()

    QTimer.singleShot(0, lambda: answer("Don't close"))
    window.close()
    assert window.train_page.is_busy(), "Don't close leaves the run alone"
    QTimer.singleShot(0, lambda: answer("Stop and save"))
    window.close()
    assert not window.train_page.is_busy() and states[-1] == "stopped"


def test_demo_flag_opens_on_the_demo_settings_and_sample(qtbot, home, tmp_path, monkeypatch):
    import gui.app as app_module
    from engine.light import demo_settings

    shown = []
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)
    monkeypatch.setattr(app_module, "build_window",
                        lambda home=None: shown.append(_window(qtbot, home, tmp_path, monkeypatch)) or shown[-1])
    assert app_module.main(["--demo", "--home", str(home)]) == 0
    window = shown[0]
    assert window.state.config == demo_settings.demo_config()
    assert window.current_page() is window.train_page
    assert window.train_page.buttons["Start"].isEnabled()
    window.dataset_page.job.cancel()
