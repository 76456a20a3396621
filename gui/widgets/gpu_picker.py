"""Which GPUs train (``distributed.gpus``): one checkbox per NVIDIA GPU, in CUDA's numbering (PCI bus order), with its
free memory. The choice is kept by PCI bus id, which names the same card after a reboot or a driver update."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QCheckBox, QVBoxLayout, QWidget

from engine.light import gpu, ranks
from gui.widgets.labels import plain_label

NONE_CHECKED = "None checked: the run trains on GPU 0. Check two or more to train on them together."
NO_GPU = "No NVIDIA GPU: the run trains on one device."


class GpuPicker(QWidget):
    """The same interface as the form's other list widgets: ``chosen()`` and ``set_chosen()``; ``set_probe()`` with
    every new GPU reading."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self.note = plain_label(NO_GPU)
        self.note.setObjectName("pagePurpose")
        self._layout.addWidget(self.note)
        self.boxes: dict[str, QCheckBox] = {}  # by bus id (or the entry as written, for a GPU not on this machine)
        self._group = QButtonGroup(self)  # a box's id: its key's place in _keys
        self._group.setExclusive(False)
        self._group.idToggled.connect(self._on_box_toggled)
        self._keys: list[str] = []
        self._chosen: list[str] = []
        self._cards: list[gpu.GpuInfo] = []

    def chosen(self) -> list[str]:
        return list(self._chosen)

    def set_chosen(self, entries: list[str]) -> None:
        self._chosen = [str(e) for e in entries]
        self._rebuild()

    def set_probe(self, probe: gpu.Probe) -> None:
        cards = gpu.cuda_devices(probe) if probe.available else []
        same = [c.pci_bus_id or str(c.index) for c in cards] == [c.pci_bus_id or str(c.index) for c in self._cards]
        self._cards = cards
        if same:
            for number, card in enumerate(cards):  # only the free memory moved
                box = self.boxes.get(self._key(card, number))
                if box is not None:
                    box.setText(self._label(card, number))
            return
        self._rebuild()

    # -------------------------------------------------------------------------------------------------------------
    def _key(self, card: gpu.GpuInfo, number: int) -> str:
        """The entry of ``_chosen`` that names this card (as the user or a config wrote it), else its bus id."""
        for entry in self._chosen:
            if ranks.find_gpu(entry, self._cards) is card:
                return entry
        return card.pci_bus_id or str(number)

    @staticmethod
    def _label(card: gpu.GpuInfo, number: int) -> str:
        """Short enough for the settings column: "GPU 0: RTX 4090 · 01:00.0 · 22.8 GiB free" (the full name and bus
        id in the tooltip)."""
        name = card.name.replace("NVIDIA ", "").replace("GeForce ", "")
        bus = f" · {card.pci_bus_id.split(':', 1)[1] if card.pci_bus_id.count(':') == 2 else card.pci_bus_id}" \
            if card.pci_bus_id else ""
        return f"GPU {number}: {name}{bus} · {card.free_bytes / 2**30:.1f} GiB free"

    def _rebuild(self) -> None:
        for box in self.boxes.values():
            self._group.removeButton(box)
            self._layout.removeWidget(box)
            box.deleteLater()
        self.boxes, self._keys = {}, []
        for number, card in enumerate(self._cards):
            key = self._key(card, number)
            box = self._add_box(key, self._label(card, number), key in self._chosen)
            box.setToolTip(f"{card.name}, PCI bus {card.pci_bus_id or '?'}, CUDA device {number}"
                           + (f", {card.uuid}" if card.uuid else ""))
        for entry in self._chosen:  # chosen in a config, but not on this machine: shown so it can be unchecked
            if entry not in self.boxes:
                self._add_box(entry, f"{entry} (not on this machine)", True)
        self._update_note()

    def _add_box(self, key: str, text: str, checked: bool) -> QCheckBox:
        box = QCheckBox(text)
        box.setChecked(checked)
        box.setAccessibleName(f"Train on {text}")
        self._group.addButton(box, len(self._keys))
        self._keys.append(key)
        self.boxes[key] = box
        self._layout.insertWidget(self._layout.count() - 1, box)
        return box

    def _on_box_toggled(self, index: int, on: bool) -> None:
        key = self._keys[index]
        if on and key not in self._chosen:
            self._chosen.append(key)
        elif not on and key in self._chosen:
            self._chosen.remove(key)
        self._update_note()
        self.sig_changed.emit()

    def _update_note(self) -> None:
        if not self._cards:
            self.note.setText(NO_GPU)
        elif len(self._chosen) == 0:
            self.note.setText(NONE_CHECKED if len(self._cards) > 1 else "")
        elif len(self._chosen) == 1:
            self.note.setText("One GPU trains.")
        else:
            self.note.setText(f"{len(self._chosen)} GPUs train together, one process each: the effective batch is "
                              f"micro-batch × accumulation × {len(self._chosen)}.")
        self.note.setVisible(bool(self.note.text()))
