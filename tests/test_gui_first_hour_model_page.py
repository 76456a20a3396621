"""The Model page estimates each catalog model as a new user would train it (the defaults, or the fit advice's change
to them for the GPU found), says so, and shows the chosen model's row; its download buttons do what they say."""

from __future__ import annotations

import sys

import pytest

from engine.light import catalog, estimator, fit
from engine.light import config as run_config
from gui.app_state import AppState
from tests import fake_nvml


@pytest.fixture
def state(home):
    return AppState(str(home))


def _page(qtbot, state, monkeypatch, nvml, engine_command=None):
    from gui.pages.model_page import ModelPage

    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    state.gpu.refresh()
    page = ModelPage(state, engine_command=engine_command)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: "Looking" not in page.gpu.text(), timeout=5_000)
    return page


def _row(page, name: str) -> int:
    return next(r for r in range(page.table.rowCount()) if page.table.item(r, 0).text() == name)


def test_without_a_gpu_each_model_is_estimated_with_the_default_settings_in_gib(qtbot, state, monkeypatch):
    from engine.light import demo_settings

    state.set_config(demo_settings.demo_config())  # batch 8, no checkpointing: the demo's, not a 7B's
    broken = fake_nvml.module(init_error=fake_nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    page = _page(qtbot, state, monkeypatch, broken)
    spec = catalog.find("llama-2-7b")
    need = estimator.estimate(spec, run_config.RunConfig(model=spec.key)).total
    row = _row(page, spec.name)
    assert page.table.item(row, 6).text() == f"{need / 2**30:.1f} GiB" and need < 10 * 2**30
    assert page.table.item(row, 5).text().endswith("GiB") and page.table.item(row, 7).text() == "no GPU"
    assert "default QLoRA settings" in page.basis.text() and "micro-batch 4 × 1,024 tokens" in page.basis.text()
    assert "gradient checkpointing on" in page.basis.text()


def test_on_a_small_gpu_a_model_is_estimated_with_the_change_that_makes_it_fit(qtbot, state, monkeypatch):
    page = _page(qtbot, state, monkeypatch, fake_nvml.module(fake_nvml.card(total_gib=12.0, used_gib=1.0)))
    spec = catalog.find("llama-3.1-8b")
    plan = fit.default_plan(spec, 11 * 2**30)
    assert plan.change and plan.status == "fits"
    row = _row(page, spec.name)
    assert page.table.item(row, 7).text() == f"fits with: {plan.change}"
    assert page.table.item(row, 6).text() == f"{plan.need_bytes / 2**30:.1f} GiB"
    assert page.table.item(_row(page, "Llama 3.2 1B"), 7).text() == "fits"
    assert "where they do not fit this GPU" in page.basis.text()


def test_the_chosen_models_row_is_selected_and_bold(qtbot, state, monkeypatch):
    page = _page(qtbot, state, monkeypatch, fake_nvml.module(fake_nvml.card()))
    state.set_model("llama-3.2-1b")
    row = _row(page, "Llama 3.2 1B")
    assert page.table.selected_row() == row and page.table.item(row, 0).font().bold()
    assert not page.table.item(0, 0).font().bold()
    page.table.select_only(0)  # the user picks the demo
    assert state.config.model == "demo" and page.table.item(0, 3).font().bold()
    assert not page.table.item(row, 0).font().bold()
    state.set_model("some/hub-model")
    assert page.table.selected_row() is None


def test_cancel_download_is_enabled_only_while_something_downloads(qtbot, state, monkeypatch):
    page = _page(qtbot, state, monkeypatch, fake_nvml.module(fake_nvml.card()),
                 engine_command=[sys.executable, "-c", "import time; time.sleep(30)"])
    assert page.button_download.isEnabled() and not page.button_cancel.isEnabled()
    page.button_download.click()
    assert page.download.is_running() and page.button_cancel.isEnabled() and not page.button_download.isEnabled()
    with qtbot.waitSignal(page.download.sig_exited, timeout=10_000):
        page.button_cancel.click()
    assert not page.button_cancel.isEnabled() and page.button_download.isEnabled()
    assert "cancelled" in page.progress.text()
