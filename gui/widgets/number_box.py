"""A spin box for a decimal setting that shows the number as people write it (3, 0.05, 2e-4) with its unit, and
accepts it typed either way (0.0002 or 2e-4)."""

from __future__ import annotations

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox

from engine.light.units import plain_number


class NumberBox(QDoubleSpinBox):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDecimals(12)  # the value's own precision; the text shows only what it needs

    def textFromValue(self, value: float) -> str:
        return plain_number(value)

    def valueFromText(self, text: str) -> float:
        number = self._number(text)
        return self.value() if number is None else number

    def validate(self, text: str, position: int):
        number = self._number(text)
        if number is None:
            return QValidator.State.Intermediate, text, position
        inside = self.minimum() <= number <= self.maximum()
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate), text, position

    def _number(self, text: str) -> float | None:
        text = text.strip()
        if self.suffix() and text.endswith(self.suffix().strip()):
            text = text[: -len(self.suffix().strip())]
        try:
            return float(text.replace(",", "").strip())
        except ValueError:
            return None
