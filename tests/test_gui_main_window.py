"""The main window composes the pages, wires Runs → Train/Chat, persists its state, and asks before closing a
running training."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from shiboken6 import isValid

from engine.light import config as run_config
from engine.light import protocol
from gui import cycle_collector
from gui.app_state import AppState
from gui.pages import PAGES
from tests import fake_nvml

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


def _window(qtbot, home, tmp_path, monkeypatch, fake_args=()):
    window = _unregistered_window(home, tmp_path, fake_args)
    qtbot.addWidget(window)
    return window


def _unregistered_window(home, tmp_path, fake_args=()):
    """A window the test deletes itself."""
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.instance().setOrganizationName("LlamaDesk-tests")
    from gui.main_window import MainWindow

    return MainWindow(AppState(str(home)), engine_command=FAKE + list(fake_args))


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
    assert window.train_page.provenance.text() == "Settings: the demo preset (llamadesk --demo)"
    assert window.dataset_page.path == window.state.config.dataset  # the page shows (and checks) the sample
    window.close()

    # Plain llamadesk afterwards keeps those settings and says where they came from.
    shown.clear()
    assert app_module.main(["--home", str(home)]) == 0
    again = shown[0]
    assert again.state.config == demo_settings.demo_config()
    assert again.train_page.provenance.text() == \
        "Settings: the demo preset (llamadesk --demo) (as you left them last time)"
    again.dataset_page.job.cancel()


def test_closing_while_the_gpu_is_read_ends_the_threads_and_frees_the_pages(qtbot, qtlog, home, tmp_path, nvml):
    """The crash this guards against: a page's timers freed by Python's cycle collector on the GPU monitor's thread
    (it allocates as it reads), then fired into freed memory by the GUI thread. With collection on, as a fresh app
    has it, the app's own setting moves it to this (the GUI) thread; closing the window mid-reading ends the
    monitor's thread, and the deleted window's pages are freed here."""
    main = threading.get_ident()
    reading, readers = threading.Event(), set()
    busy = fake_nvml.card(processes=[(pid, f"worker {pid}", 2**20) for pid in range(1000, 6000)])
    fake = nvml(fake_nvml.module(busy))  # a reading allocates for each process: many collections' worth
    init = fake.nvmlInit

    def slow_init():  # long enough to close the window while the reader is in NVML
        readers.add(threading.get_ident())
        reading.set()
        time.sleep(0.3)
        init()

    fake.nvmlInit = slow_init
    collected_on = []

    def on_collection(phase, _info):
        if phase == "start":
            collected_on.append(threading.get_ident())

    gc.enable()
    cycle_collector.collect_on_gui_thread(QApplication.instance())
    gc.callbacks.append(on_collection)
    try:
        window = _unregistered_window(home, tmp_path)
        qtbot.waitUntil(reading.is_set, timeout=5_000)
        reading.clear()
        window.state.gpu.refresh()
        qtbot.waitUntil(reading.is_set, timeout=5_000)
        window.close()  # while the reader sleeps in NVML
        assert not window.state.gpu.is_running()
        pages = [weakref.ref(page) for page in (window.model_page, window.dataset_page, window.train_page,
                                                window.chat_page, window.runs_page, window.engine_page)]
        state = weakref.ref(window.state)
        window.deleteLater()
        del window
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        assert not any(isValid(page()) for page in pages)
        gc.collect()
        assert [name for name, page in zip(PAGES, pages) if page() is not None] == [] and state() is None
    finally:
        gc.callbacks.remove(on_collection)
    assert main not in readers and collected_on and set(collected_on) == {main}
    assert not [r.message for r in qtlog.records if "thread" in r.message.lower()]
