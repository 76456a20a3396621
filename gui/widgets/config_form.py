"""A form over the run config's settings, built from the schema: one widget per setting, chosen by its type and
choices, bounded by its bounds, labelled by its label, with its documentation as the tooltip."""

from __future__ import annotations

import shlex

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from engine.light import config as run_config
from engine.light import schema
from engine.light.schema import Setting
from engine.light.setting_words import in_words
from gui.widgets.gpu_picker import GpuPicker
from gui.widgets.labels import add_row
from gui.widgets.number_box import NumberBox

AUTO = "(auto)"  # the combo entry for an optional setting left empty (data.format: detect it)
INT_MAX = 2**31 - 1  # QSpinBox holds a C int
FLOAT_MAX = 1e9
# A choice's words on the form where its value is a technical term; the value itself stays what the config holds.
CHOICE_WORDS = {"quantization": {"nf4": "4-bit (nf4, QLoRA)", "none": "16/32-bit (plain LoRA)"}}


class ConfigForm(QWidget):
    """Signals: sig_changed() whenever the user edits a field (a text field when editing is finished)."""

    sig_changed = Signal()

    def __init__(self, settings: list[Setting], parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = {s.path: s for s in settings}
        self.widgets: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        for setting in settings:
            widget = self._widget_for(setting)
            widget.setToolTip(setting.doc)
            widget.setAccessibleName(setting.label)
            self.widgets[setting.path] = widget
            add_row(layout, setting.label, widget)

    @classmethod
    def for_group(cls, group: str, parent: QWidget | None = None) -> ConfigForm:
        return cls([s for s in run_config.SETTINGS if s.group == group], parent)

    def _widget_for(self, s: Setting) -> QWidget:
        kind = s.base_type
        if s.path == "distributed.gpus":  # the machine's GPUs, as the probe reads them
            widget = GpuPicker()
            widget.sig_changed.connect(self.sig_changed)
        elif s.choices is not None and kind is list:
            widget = ChoiceBoxes([str(c) for c in s.choices])
            widget.sig_changed.connect(self.sig_changed)
        elif s.choices is not None:
            widget = QComboBox()
            words = CHOICE_WORDS.get(s.path, {})
            for choice in ([None] if s.optional else []) + list(s.choices):
                widget.addItem(AUTO if choice is None else words.get(choice, str(choice)), choice)
            widget.currentTextChanged.connect(self.sig_changed)
        elif kind is bool:
            widget = QCheckBox()
            widget.toggled.connect(self.sig_changed)
        elif kind is int:
            widget = QSpinBox()
            widget.setRange(int(_lowest(s)), int(min(_highest(s), INT_MAX)))
            widget.setGroupSeparatorShown(True)  # 1,024
            widget.valueChanged.connect(self.sig_changed)
        elif kind is float:
            widget = NumberBox()
            widget.setRange(_lowest(s), min(_highest(s), FLOAT_MAX))
            widget.setSingleStep(0.0001 if "rate" in s.path else 0.05 if s.high is not None and s.high <= 1 else 1)
            widget.valueChanged.connect(self.sig_changed)
        else:  # text, a list (comma-separated) or a mapping (key=value items)
            widget = QLineEdit()
            if kind is list:
                widget.setPlaceholderText("comma-separated, e.g. q_proj, v_proj")
            elif kind is dict:
                widget.setPlaceholderText("key=value items, e.g. instruction=question output=answer")
            widget.editingFinished.connect(self.sig_changed)
        if s.unit and isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setSuffix(f" {s.unit}")
        if s.zero and isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setSpecialValueText(s.zero)  # shown at the minimum, 0: "by epochs", not "0 steps"
        return widget

    def load(self, config: run_config.RunConfig) -> None:
        for path, widget in self.widgets.items():
            value = schema.get_path(config, path)
            widget.blockSignals(True)
            if isinstance(widget, (ChoiceBoxes, GpuPicker)):
                widget.set_chosen(value or [])
            elif isinstance(widget, QComboBox):
                widget.setCurrentIndex(0 if value is None else widget.findData(value))  # (auto) leads
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                widget.setValue(value)
            else:
                widget.setText(_as_text(value))
            widget.blockSignals(False)

    def apply(self, data: dict) -> dict:
        """Write the form's values into plain config data (as from ``RunConfig.to_dict()``) and return it."""
        for path, widget in self.widgets.items():
            kind = self.settings[path].base_type
            if isinstance(widget, (ChoiceBoxes, GpuPicker)):
                value = widget.chosen()
            elif isinstance(widget, QComboBox):
                value = widget.currentData()
            elif isinstance(widget, QCheckBox):
                value = widget.isChecked()
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                value = widget.value()
            elif kind is list:
                value = [part.strip() for part in widget.text().split(",") if part.strip()]
            elif kind is dict:
                value = _as_mapping(widget.text())
            else:
                value = widget.text().strip()
            schema.set_path(data, path, value)
        return data

    def show_problems(self, problems: list[str]) -> list[str]:
        """Mark this form's fields named by config problems (their tooltip leads with the problem) and return every
        problem in the form's words: each setting called by its label, as in ``in_words``."""
        for path, widget in self.widgets.items():
            own = [in_words(p) for p in problems if p.split(":", 1)[0].strip() == path]
            doc = self.settings[path].doc
            widget.setToolTip("\n".join(own + [doc]) if own else doc)
        return [in_words(problem) for problem in problems]


class ChoiceBoxes(QWidget):
    """A list setting with fixed choices (``train.report_to``): one checkbox per choice, in a row."""

    sig_changed = Signal()

    def __init__(self, choices: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.boxes = {}
        for choice in choices:
            box = QCheckBox(choice)
            box.toggled.connect(self.sig_changed)
            self.boxes[choice] = box
            row.addWidget(box)
        row.addStretch(1)

    def chosen(self) -> list[str]:
        return [name for name, box in self.boxes.items() if box.isChecked()]

    def set_chosen(self, names: list[str]) -> None:
        for name, box in self.boxes.items():
            box.blockSignals(True)
            box.setChecked(name in names)
            box.blockSignals(False)


def _lowest(s: Setting) -> float:
    if s.low is not None:
        return s.low
    if s.above is not None:  # exclusive: the smallest step above it the widget can show
        return s.above + (1 if s.base_type is int else 1e-6)
    return -FLOAT_MAX


def _highest(s: Setting) -> float:
    if s.high is not None:
        return s.high
    if s.below is not None:
        return s.below - (1 if s.base_type is int else 1e-6)
    return FLOAT_MAX


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _as_mapping(text: str) -> dict[str, str] | str:
    """``a=b c=d`` as a mapping; anything else stays text, which validation then names as the problem."""
    try:
        items = shlex.split(text)
    except ValueError:
        return text
    pairs = [item.partition("=") for item in items]
    if not all(sep and key and value for key, sep, value in pairs):
        return text
    return {key: value for key, _, value in pairs}
