"""A form over chosen fields of the run config: one widget per field, the field's documentation as its tooltip."""

from __future__ import annotations


import typing

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from engine import config as run_config
from engine.settings import set_path

# Fields with a fixed set of values get a combo box.
CHOICES = {
    "quantization": run_config.QUANTIZATIONS,
    "compute_dtype": run_config.DTYPES,
    "device": run_config.DEVICES,
    "train.optimizer": run_config.OPTIMIZERS,
    "train.scheduler": run_config.SCHEDULERS,
    "data.train_on": ("assistant", "all"),
}
LABELS = {"lora.rank": "LoRA rank", "lora.alpha": "LoRA alpha", "train.learning_rate": "Learning rate",
          "train.micro_batch": "Micro-batch", "train.grad_accum": "Gradient accumulation", "data.cutoff": "Cutoff"}


class ConfigForm(QWidget):
    """Signals: sig_changed() whenever the user edits a field."""

    sig_changed = Signal()

    def __init__(self, fields: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.fields = fields
        self.widgets: dict[str, QWidget] = {}
        docs = run_config.docs()
        layout = QFormLayout(self)
        for path in fields:
            widget = self._widget_for(path, _field_type(path))
            widget.setToolTip(docs.get(path, ""))
            self.widgets[path] = widget
            layout.addRow(LABELS.get(path, path.split(".")[-1].replace("_", " ").capitalize()), widget)

    def _widget_for(self, path: str, kind) -> QWidget:
        if path in CHOICES:
            widget = QComboBox()
            widget.addItems(list(CHOICES[path]))
            widget.currentTextChanged.connect(self.sig_changed)
        elif kind is bool:
            widget = QCheckBox()
            widget.toggled.connect(self.sig_changed)
        elif kind is int:
            widget = QSpinBox()
            widget.setRange(0, 1_048_576)
            widget.valueChanged.connect(self.sig_changed)
        elif kind is float:
            widget = QDoubleSpinBox()
            widget.setDecimals(6)
            widget.setRange(0.0, 1000.0)
            widget.setSingleStep(0.0001 if "rate" in path else 0.05)
            widget.valueChanged.connect(self.sig_changed)
        else:
            widget = QLineEdit()
            widget.textChanged.connect(self.sig_changed)
        return widget

    def load(self, config: run_config.RunConfig) -> None:
        values = config.to_dict()
        for path, widget in self.widgets.items():
            value = _get(values, path)
            widget.blockSignals(True)
            if isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                widget.setValue(value)
            else:
                widget.setText("" if value is None else str(value))
            widget.blockSignals(False)

    def apply(self, data: dict) -> dict:
        """Write the form's values into a config dict (as from RunConfig.to_dict()) and return it."""
        for path, widget in self.widgets.items():
            if isinstance(widget, QComboBox):
                value = widget.currentText()
            elif isinstance(widget, QCheckBox):
                value = widget.isChecked()
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                value = widget.value()
            else:
                value = widget.text()
            set_path(data, path, value)
        return data


def _field_type(path: str):
    cls = run_config.RunConfig
    *parents, leaf = path.split(".")
    for part in parents:
        cls = typing.get_type_hints(cls)[part]
    hint = typing.get_type_hints(cls)[leaf]
    return hint if hint in (bool, int, float, str) else str


def _get(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data
