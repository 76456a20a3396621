"""The Chat page's sampling settings (temperature, top p, top k, length, repetition penalty) as spin boxes, bounded
and described here, starting at the chat protocol's own defaults."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QSpinBox

from engine.light import protocol
from gui.widgets.labels import add_row

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(protocol.Chat)}  # one source of truth: the protocol
_SAMPLING = (  # (Chat field, label, minimum, maximum, step, tooltip); a step of 1 means an integer
    ("temperature", "Temperature", 0.0, 2.0, 0.05, ("Randomness of the next-token choice. 0 always picks the most "
                                                    "likely token; higher values give more varied text.")),
    ("top_p", "Top p", 0.0, 1.0, 0.05, ("Nucleus sampling: choose only among the most likely tokens whose "
                                        "probabilities add up to this share. 1 disables it.")),
    ("top_k", "Top k", 0, 1000, 1, "Choose only among the k most likely tokens. 0 disables it."),
    ("max_new_tokens", "Max new tokens", 1, 8192, 1, "The longest reply, in tokens; generation stops there."),
    ("repetition_penalty", "Repetition penalty", 1.0, 2.0, 0.05, ("Makes tokens already in the conversation less "
                                                                   "likely. 1 disables it; 1.1-1.3 curbs loops.")),
)


def add_sampling_rows(form: QFormLayout) -> dict[str, QSpinBox | QDoubleSpinBox]:
    """One labelled row per setting; the boxes by the Chat field they set."""
    boxes: dict[str, QSpinBox | QDoubleSpinBox] = {}
    for name, label, low, high, step, tip in _SAMPLING:
        box = QSpinBox() if step == 1 else QDoubleSpinBox()
        if step != 1:
            box.setDecimals(2)
            box.setSingleStep(step)
        box.setRange(low, high)
        box.setValue(_DEFAULTS[name])
        box.setToolTip(tip)
        box.setAccessibleName(label)
        boxes[name] = box
        add_row(form, label, box)
    return boxes
