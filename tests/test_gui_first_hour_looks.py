"""Secondary text reads in both palettes, and the memory panel's line items start with a capital."""

from __future__ import annotations

import pytest

from gui import theme


@pytest.mark.parametrize("palette", [theme.LIGHT, theme.DARK], ids=["light", "dark"])
def test_every_text_colour_meets_a_contrast_of_4_5_on_every_background(palette):
    for name in theme.TEXT_COLORS:
        for background in theme.BACKGROUNDS:
            ratio = theme.contrast(getattr(palette, name), getattr(palette, background))
            assert ratio >= 4.5, (name, background, round(ratio, 2))
    assert theme.contrast(palette.muted, palette.border) >= 4.5, "a disabled primary button's text"
    assert theme.contrast(palette.accent_text, palette.accent) >= 4.5
    assert theme.contrast(palette.muted, palette.window) < theme.contrast(palette.text, palette.window), \
        "secondary text stays secondary"


def test_the_contrast_ratio_is_wcags():
    assert theme.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert theme.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_the_memory_panels_line_items_are_in_sentence_case(qtbot):
    from engine.light import config as run_config
    from engine.light import gpu
    from gui.widgets.memory_panel import MemoryPanel

    panel = MemoryPanel()
    qtbot.addWidget(panel)
    panel.show_for(run_config.RunConfig(model="llama-3.1-8b"), gpu.Probe(False, "no GPU in this test"))
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert any(name.startswith("Optimizer states") for name in names) and "LoRA adapters" in names
    assert names[-1] == "Total" and not any(name[:1].islower() for name in names), names


def test_without_a_gpu_the_memory_panel_does_not_repeat_why(qtbot):
    from engine.light import config as run_config
    from engine.light import gpu
    from gui.widgets.memory_panel import MemoryPanel

    panel = MemoryPanel()
    qtbot.addWidget(panel)
    panel.show_for(run_config.RunConfig(model="llama-3.1-8b"),
                   gpu.Probe(False, "no NVIDIA GPU: the NVIDIA driver library (NVML) was not found"))
    text = panel.verdict.text()
    assert "on a CUDA GPU" in text and "no GPU to compare it with" in text
    assert "NVIDIA GPU" not in text and "NVML" not in text, text
