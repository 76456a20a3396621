"""Every page at 1280×800 and 1920×1080, in the light and the dark palette, empty and with content: no control
squeezed below the size it needs, none outside its parent, none drawn over another."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

import resources
from gui import theme
from gui.app_state import AppState
from tests.layout_check import problems

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]
SIZES = ((1280, 800), (1920, 1080))


@pytest.fixture
def themed(monkeypatch):
    """Applies a palette to the shared application, and puts back the plain one afterwards for the other tests."""
    app = QApplication.instance()
    before = (app.style().name(), app.palette(), app.styleSheet())

    def use(name: str) -> None:
        monkeypatch.setenv(theme.ENV_THEME, name)
        theme._apply(app)

    yield use
    app.setStyle(before[0])
    app.setPalette(before[1])
    app.setStyleSheet(before[2])
    theme._current = theme.LIGHT


LONG = "harbor-lights-rank-64-cutoff-2048-cosine-with-restarts-second-attempt-after-the-out-of-memory-retry"


def finished_run(home: Path, name: str = "harbor-demo") -> None:
    folder = home / "runs" / name
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    (folder / "config.yaml").write_text("model: demo\ndataset: /data/harbor_lights.json\n")
    (folder / "events.jsonl").write_text(
        '{"type": "progress", "step": 60, "total_steps": 60, "epoch": 1.6, "loss": 0.41, "elapsed_s": 250}\n'
        '{"type": "state", "state": "finished"}\n')


@pytest.mark.parametrize("palette", ["light", "dark"])
@pytest.mark.parametrize("content", [False, True], ids=["empty", "with-content"])
def test_every_page_lays_out_at_common_sizes(qtbot, home, tmp_path, themed, palette, content):
    themed(palette)
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.instance().setOrganizationName("LlamaDesk-tests")
    if content:
        finished_run(home)
        finished_run(home, LONG)  # long names must shorten, not widen the window
    from gui.main_window import PAGES, MainWindow

    window = MainWindow(AppState(str(home)), engine_command=FAKE)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    if content:
        window.dataset_page.open_path(str(resources.path("sample/harbor_lights.json")))
        qtbot.waitUntil(lambda: window.dataset_page.body.currentIndex() == 1, timeout=10_000)
        chat = window.chat_page
        chat.select_run(LONG)
        chat.right_pane.show()  # as when comparing with the base model
        chat.status_label.setText("Loading weights: 58%|█████▊    | 158/272 [00:01<00:00, 150.44it/s] " * 3)
        for pane in (chat.left_pane, chat.right_pane):
            pane.transcript.add_user("Who keeps the lighthouse?")
            pane.transcript.begin_reply()
            pane.transcript.append_reply("Maren Holt keeps it. ```print('light')``` " + "firehose." * 60)
            pane.transcript.finish_reply("length", 256, 10.0)
    found = {}
    for width, height in SIZES:
        window.resize(width, height)
        for page in PAGES:
            window.show_page(page)
            qtbot.wait(30)  # let the layouts settle
            assert (window.width(), window.height()) == (width, height), \
                f"the window cannot be made {width}×{height}: it needs {window.minimumSizeHint().toTuple()}; pages: " + str([(n, p.minimumSizeHint().width()) for n, p in zip(PAGES, window._pages())])
            for problem in problems(window):
                found.setdefault(problem, f"{page} at {width}×{height}")
    assert not found, "\n".join(f"{where}: {problem}" for problem, where in found.items())


def test_the_checker_sees_a_squeezed_button_a_cut_label_and_an_overlap(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    row = QHBoxLayout(window)
    squeezed = QPushButton("Start training with these settings")
    squeezed.setMaximumWidth(60)
    cut = QLabel("a label much longer than the room it is given")
    cut.setMaximumWidth(40)
    cut.setMinimumWidth(40)
    row.addWidget(squeezed)
    row.addWidget(cut)
    row.addWidget(QPushButton("OK"))
    window.show()
    qtbot.waitExposed(window)
    stray = QPushButton("drawn over", window)  # placed by hand, over the laid-out row
    stray.setGeometry(squeezed.geometry())
    stray.show()
    found = problems(window)
    assert any(p.startswith("squeezed:") and "Start training" in p for p in found), found
    assert any(p.startswith("overlap:") and "drawn over" in p for p in found), found
    assert any(p.startswith("cut text:") and "a label much" in p for p in found), found


def test_every_control_has_a_name_for_screen_readers(qtbot, home, tmp_path):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    from gui.main_window import MainWindow
    from tests.layout_check import unnamed_controls

    finished_run(home)
    window = MainWindow(AppState(str(home)), engine_command=FAKE)
    qtbot.addWidget(window)
    unnamed = unnamed_controls(window)
    assert not unnamed, "\n".join(unnamed)
