"""ColumnPicker: for the chosen dataset format, one drop-down per field listing the file's columns, so a file whose
columns LlamaDesk cannot recognise is mapped right in the window (the command line's ``--columns`` does the same)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QWidget

from engine.light.dataset_formats import FIELD_WORDS, FIELDS, REQUIRED
from gui.widgets.labels import plain_label

UNUSED = "(not used)"


class ColumnPicker(QWidget):
    """Signals: sig_changed() when the user picks another column."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.format = ""
        self.columns: list[str] = []
        self.combos: dict[str, QComboBox] = {}
        self.combos_label = None
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)

    def show_fields(self, fmt: str | None, columns: list[str], mapping: dict[str, str]) -> None:
        """One picker per field of ``fmt``, each listing ``columns``, set from ``mapping`` (field → column); a field
        named like a column starts on that column."""
        self.format, self.columns = fmt or "", list(columns)
        while self._row.count():
            widget = self._row.takeAt(0).widget()
            if widget is not None and widget is not self.combos_label:
                widget.deleteLater()
        self.combos = {}
        if self.combos_label is None:
            self.combos_label = plain_label("Columns:", wrap=False)
        self._row.addWidget(self.combos_label)
        guesses = _guesses(self.format, self.columns, mapping)
        for name in FIELDS.get(self.format, ()):
            combo = QComboBox()
            combo.setAccessibleName(f"Column for {FIELD_WORDS[name]}")
            combo.setToolTip(f"The column that holds the {FIELD_WORDS[name].lower()} (field '{name}')")
            if name not in REQUIRED[self.format]:
                combo.addItem(UNUSED, "")
            for column in self.columns:
                combo.addItem(column, column)
            chosen = guesses.get(name, "")
            combo.setCurrentIndex(max(0, combo.findData(chosen)) if chosen else 0)
            combo.currentIndexChanged.connect(self._on_changed)
            self._row.addWidget(plain_label(f"{FIELD_WORDS[name]}:", wrap=False))
            self._row.addWidget(combo, 1)
            self.combos[name] = combo
        self._row.addStretch(0)
        self.setVisible(bool(self.combos))

    def mapping(self) -> dict[str, str]:
        """field → column for every field given a column that is not already the field's own name."""
        chosen = {name: combo.currentData() for name, combo in self.combos.items()}
        return {name: column for name, column in chosen.items() if column and column != name}

    def unused(self) -> list[str]:
        """The file's columns no field reads."""
        used = {combo.currentData() for combo in self.combos.values()}
        return [column for column in self.columns if column not in used]

    def _on_changed(self, _index: int) -> None:
        self.sig_changed.emit()


def _guesses(fmt: str, columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """The column each field starts on: the mapping's, else a column named like the field, else (for a field the
    format needs) the first column no other field took, so two fields never start on the same column."""
    chosen = {name: mapping.get(name) or (name if name in columns else "") for name in FIELDS.get(fmt, ())}
    free = [c for c in columns if c not in chosen.values()]
    for name in REQUIRED.get(fmt, ()):
        if not chosen.get(name) and free:
            chosen[name] = free.pop(0)
    return chosen
