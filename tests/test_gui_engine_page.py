"""The Engine page and its SetupJob: detection shown, the build chosen, steps run as real processes with progress,
a failure explained with Repair offered, the record written, the self-test summarised."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gui import engine_env
from tests import fake_nvml

SELFTEST = {"ok": True, "versions": {"torch": "2.13.0"}, "device": {"kind": "cpu"}, "problems": [], "seconds": 1.5}


def _steps(*, fail_at: str | None = None, selftest: dict = SELFTEST):
    def steps(self, backend, sources):
        made = []
        for title in ("Create the Python environment", "Install the engine's libraries"):
            code = f"print({'working on: ' + title!r}); " + ("raise SystemExit(3)" if title == fail_at else
                                                           f"import pathlib; p = pathlib.Path(r'{self.python}'); "
                                                           "p.parent.mkdir(parents=True, exist_ok=True); p.touch()")
            made.append(engine_env.Step(title, [sys.executable, "-c", code]))
        made.append(engine_env.Step("Self-test", [sys.executable, "-c", f"print({json.dumps(json.dumps(selftest))})"]))
        return made
    return steps


@pytest.fixture
def page(qtbot, tmp_path, monkeypatch):
    from gui.pages.engine_page import EnginePage

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(fake_nvml.card(), driver="560.35.03", cuda=12060))
    env = engine_env.EngineEnv(tmp_path / "engine")
    env.venv.joinpath("bin").mkdir(parents=True)
    sources = engine_env.Sources("uv", Path("lock.txt"), Path("llamadesk.whl"))
    widget = EnginePage(env=env, sources=sources, managed=True)
    qtbot.addWidget(widget)
    qtbot.waitUntil(lambda: widget.detection.source == "nvml", timeout=5_000)  # read off the UI thread
    return widget


def test_first_run_detects_the_gpu_chooses_the_build_and_installs(qtbot, page, monkeypatch):
    assert page.needs_setup() and "not set up yet" in page.state_label.text()
    assert "RTX 4090, driver 560.35.03 (CUDA 12.6), found by nvml" in page.gpu_label.text()
    assert page.backend.currentData() == "cu126" and page.buttons["Install"].isVisibleTo(page)
    monkeypatch.setattr(engine_env.EngineEnv, "steps", _steps())
    steps = []
    page.job.sig_step.connect(lambda n, count, title: steps.append((n, count, title)))
    with qtbot.waitSignal(page.job.sig_done, timeout=30_000) as done:
        page.buttons["Install"].click()
        assert not page.buttons["Reinstall"].isEnabled() and page.buttons["Cancel"].isEnabled()
    assert done.args[0] is True and "self-test passed in 1.5 s" in done.args[1], done.args
    assert [n for n, *_ in steps] == [1, 2, 3] and "working on: Install the engine's libraries" in page.log.toPlainText()
    record = page.env.record()
    assert record["backend"] == "cu126" and record["selftest"]["ok"] and record["detection"]["driver"] == "560.35.03"
    assert not page.needs_setup() and page.state_label.text().startswith("The engine is ready: NVIDIA GPU (CUDA 12.6)")
    assert page.buttons["Repair"].isVisibleTo(page) and not page.buttons["Install"].isVisibleTo(page)


def test_a_failed_step_is_explained_and_repair_and_reinstall_are_offered(qtbot, page, monkeypatch):
    page.backend.setCurrentIndex(page.backend.findData("cpu"))  # the user overrides the choice
    page.backend.activated.emit(page.backend.currentIndex())
    monkeypatch.setattr(engine_env.EngineEnv, "steps", _steps(fail_at="Install the engine's libraries"))
    with qtbot.waitSignal(page.job.sig_done, timeout=30_000) as done:
        page.buttons["Install"].click()
    assert done.args[0] is False
    assert "Install the engine's libraries failed (exit code 3)" in done.args[1]
    assert "Repair continues where it stopped; Reinstall starts from nothing" in page.step_label.text()
    assert page.buttons["Repair"].isVisibleTo(page) and page.buttons["Reinstall"].isVisibleTo(page)
    assert page.env.record() is None and page.needs_setup()
    monkeypatch.setattr(engine_env.EngineEnv, "steps", _steps(selftest={"ok": False, "problems": ["no torch"]}))
    page.refresh()
    with qtbot.waitSignal(page.job.sig_done, timeout=30_000) as done:
        page.buttons["Install"].click()
    assert done.args[0] is False and "no torch" in done.args[1]
    assert "last self-test failed" in page.state_label.text()
    monkeypatch.setattr(engine_env.EngineEnv, "steps", _steps())
    with qtbot.waitSignal(page.job.sig_done, timeout=30_000) as done:
        page.buttons["Reinstall"].click()
    assert done.args[0] is True and page.env.record()["backend"] == "cpu"


def test_a_development_install_has_nothing_to_set_up(qtbot, tmp_path):
    from gui.pages.engine_page import EnginePage

    widget = EnginePage(env=engine_env.EngineEnv(tmp_path / "engine"), managed=False)
    qtbot.addWidget(widget)
    assert not widget.needs_setup() and "nothing to set up" in widget.state_label.text()
    assert not widget.buttons["Install"].isEnabled() and not widget.buttons["Run self-test"].isEnabled()
    assert not any(button.isVisibleTo(widget) for button in widget.buttons.values()), "nothing to press"


def test_a_failure_before_the_environment_exists_names_the_button_that_is_there(qtbot, page, monkeypatch):
    monkeypatch.setattr(engine_env.EngineEnv, "steps", _steps(fail_at="Create the Python environment"))
    with qtbot.waitSignal(page.job.sig_done, timeout=30_000) as done:
        page.buttons["Install"].click()
    assert done.args[0] is False and page.step_label.text().endswith("→ Install tries again.")
    assert page.buttons["Install"].isVisibleTo(page) and not page.buttons["Repair"].isVisibleTo(page)
    assert "Reinstall" not in page.step_label.text() and "Reinstall" not in page.why_label.text()


def test_cancel_is_enabled_only_while_installing(qtbot, page, monkeypatch):
    assert not page.buttons["Cancel"].isEnabled()
    slow = [engine_env.Step("Create the Python environment", [sys.executable, "-c", "import time; time.sleep(30)"])]
    monkeypatch.setattr(engine_env.EngineEnv, "steps", lambda self, backend, sources: slow)
    with qtbot.waitSignal(page.job.sig_done, timeout=30_000) as done:
        page.buttons["Install"].click()
        assert page.buttons["Cancel"].isEnabled() and not page.buttons["Install"].isEnabled()
        page.buttons["Cancel"].click()
    assert done.args == [False, "Cancelled: the steps done so far are kept."]
    assert not page.buttons["Cancel"].isEnabled() and page.step_label.text().endswith("→ Install tries again.")


def test_without_a_gpu_the_reason_is_said_once(qtbot, tmp_path, monkeypatch):
    from gui.gpu_monitor import GpuMonitor
    from gui.pages.engine_page import EnginePage

    broken = fake_nvml.module(init_error=fake_nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    monkeypatch.setattr(engine_env, "nvidia_smi_command", lambda: None)
    monitor = GpuMonitor()
    for managed in (False, True):
        widget = EnginePage(env=engine_env.EngineEnv(tmp_path / "engine"), managed=managed, gpu_monitor=monitor)
        qtbot.addWidget(widget)
        monitor.refresh()
        qtbot.waitUntil(lambda: widget.gpu_label.text().startswith("No NVIDIA GPU"), timeout=5_000)
        shown = "\n".join((widget.gpu_label.text(), widget.why_label.text(), widget.state_label.text()))
        assert shown.lower().count("no nvidia gpu") == 1, shown
        assert not any(line.count(": ") > 1 for line in widget.why_label.text().splitlines()), shown
        if not managed:
            assert widget.why_label.text() == "To do better: with an NVIDIA GPU, install its driver."
        else:
            assert "choose Install" in widget.why_label.text() and "Reinstall" not in widget.why_label.text()
    monitor.stop()
