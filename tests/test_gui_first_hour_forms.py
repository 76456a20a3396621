"""What a new user meets first on the forms: the mouse wheel scrolls the page instead of editing a field it passes,
problems name settings by their labels, and technical choices read in plain words first."""

from __future__ import annotations

import re

import pytest

from engine.light import config as run_config
from engine.light.config import BY_PATH, SETTINGS
from engine.light.setting_words import in_words


def _problems(data: dict, **options) -> list[str]:
    with pytest.raises(run_config.ConfigError) as caught:
        run_config.from_mapping(data, **options)
    return caught.value.problems


def _wrong_values(s) -> list:
    """Values of the right type that the setting refuses, and one of the wrong type."""
    found = [{"not": "a value"} if s.base_type is not dict else 5]
    if s.choices is not None:
        found.append(["sideways"] if s.base_type is list else "sideways")
    if s.low is not None:
        found.append(s.low - 1)
    if s.above is not None:
        found.append(s.above)
    if s.high is not None:
        found.append(s.high + 1)
    if s.below is not None:
        found.append(s.below)
    return found


def every_problem() -> list[str]:
    """Every kind of problem the run config reports: each setting's wrong type and out-of-range values, and every
    rule across settings."""
    found = _problems({})  # no dataset chosen
    for s in SETTINGS:
        for value in _wrong_values(s):
            found += _problems(run_config.apply_overrides({"dataset": "d.jsonl"}, {s.path: value}))
    for overrides in ({"train.max_steps": 0, "train.epochs": 0.0},
                      {"device": "cpu", "compute_dtype": "float16"},
                      {"device": "cpu", "compute_dtype": "bfloat16", "train.optimizer": "paged_adamw_8bit"},
                      {"distributed.gpus": ["0", "0"]}, {"run_name": "../elsewhere"}):
        found += _problems(run_config.apply_overrides({"dataset": "d.jsonl"}, overrides))
    return found


def test_every_problem_the_config_reports_names_its_settings_by_their_labels():
    problems = every_problem()
    assert len(problems) > len(SETTINGS)
    dotted = re.compile(r"(?<![\w.])(" + "|".join(re.escape(p) for p in BY_PATH if "." in p) + r")(?![\w.])")
    for problem in problems:
        words = in_words(problem)
        assert not dotted.search(words), (problem, words)
        head = problem.split(":", 1)[0]
        if head in BY_PATH:
            assert words.startswith(BY_PATH[head].label + ":"), (problem, words)
    assert in_words("train.epochs: must be above 0 when train.max_steps is 0") == \
        "Epochs: must be above 0 when Max steps is 0"
    assert in_words("compute_dtype: float16 is not supported for training on the CPU; use auto or float32") == \
        "Compute precision: float16 is not supported for training on the CPU; use auto or float32"


def test_words_that_name_no_setting_are_left_as_they_are():
    assert in_words("train.micro_bach: unknown field (did you mean 'micro_batch'?)") == \
        "train.micro_bach: unknown field (did you mean 'micro_batch'?)"
    assert in_words("dataset: the model reads the dataset") == "Dataset: the model reads the dataset"
    assert in_words("train.epochs_x: no") == "train.epochs_x: no", "a longer name is not a setting's"


def test_the_form_marks_the_fields_with_problems_and_gives_them_in_words(qtbot):
    from gui.widgets.config_form import ConfigForm

    form = ConfigForm.for_group("basic")
    qtbot.addWidget(form)
    shown = form.show_problems(["train.epochs: must be above 0 when train.max_steps is 0"])
    assert shown == ["Epochs: must be above 0 when Max steps is 0"]
    assert form.widgets["train.epochs"].toolTip().startswith("Epochs: must be above 0")
    assert form.widgets["train.max_steps"].toolTip() == BY_PATH["train.max_steps"].doc
    form.show_problems([])
    assert form.widgets["train.epochs"].toolTip() == BY_PATH["train.epochs"].doc


def test_technical_choices_read_in_plain_words_and_keep_their_values(qtbot):
    from gui.widgets.config_form import ConfigForm

    form = ConfigForm(SETTINGS)
    qtbot.addWidget(form)
    for value in ("nf4", "none"):
        form.load(run_config.RunConfig(quantization=value))
        assert form.apply({})["quantization"] == value
    assert form.widgets["quantization"].currentText().startswith("16/32-bit")
    form.load(run_config.RunConfig())
    assert form.apply({})["data"]["format"] is None and form.widgets["data.format"].currentText() == "(auto)"
    for s in SETTINGS:  # plain words first: the exact term, where the label has one, comes in brackets
        assert not re.match(r"^(nf4|LoRA|fp32)\b", s.label), s.label


@pytest.fixture
def scrolled_form(qtbot, qapp):
    """A spin box, a combo box and a slider low in a scroll area's tall page, with the wheel guard installed."""
    from PySide6.QtWidgets import QComboBox, QLineEdit, QScrollArea, QSlider, QSpinBox, QVBoxLayout, QWidget

    from gui.bootstrap import WheelGuard

    guard = WheelGuard()
    qapp.installEventFilter(guard)
    area = QScrollArea()
    page = QWidget()
    column = QVBoxLayout(page)
    other = QLineEdit()
    column.addWidget(other)
    spin, combo, slider = QSpinBox(), QComboBox(), QSlider()
    spin.setRange(0, 100)
    spin.setValue(3)
    combo.addItems(["a", "b", "c"])
    slider.setRange(0, 100)
    slider.setValue(50)
    for widget in (spin, combo, slider):
        column.addWidget(widget)
    column.addSpacing(3000)
    area.setWidget(page)
    area.resize(300, 300)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    yield area, other, spin, combo, slider
    qapp.removeEventFilter(guard)


def _wheel(widget, steps: int = -3) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    inside = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(inside, QPointF(widget.mapToGlobal(inside.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_an_unfocused_field_scrolls_the_page_and_edits_nothing(qtbot, scrolled_form):
    area, other, spin, combo, slider = scrolled_form
    other.setFocus()
    qtbot.waitUntil(other.hasFocus)
    for field in (spin, combo, slider):
        before = area.verticalScrollBar().value()
        _wheel(field)
        assert not field.hasFocus(), "the wheel gives no focus"
        assert area.verticalScrollBar().value() > before, "the page scrolled"
        area.verticalScrollBar().setValue(0)
    assert spin.value() == 3 and combo.currentIndex() == 0 and slider.value() == 50


def test_the_wheel_edits_a_field_once_it_has_focus(qtbot, scrolled_form):
    _area, _other, spin, _combo, _slider = scrolled_form
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    _wheel(spin, steps=1)
    assert spin.value() == 4


def test_the_app_installs_the_wheel_guard_and_fields_take_focus_by_click_or_tab(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QSpinBox

    from gui import bootstrap

    app = bootstrap.application()
    assert isinstance(getattr(app, "_llamadesk_wheel_guard", None), bootstrap.WheelGuard)
    spin = QSpinBox()
    qtbot.addWidget(spin)
    spin.ensurePolished()
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus
