"""The header every page opens with: its title, one line on what the page is for, and, while the guided first run
has something to say, the next step with a button for it (all plain text).

The next step's line keeps its height whether it is shown, changed or gone, so the page below never moves: its text
is one line (cut with "…", the whole of it in the tooltip) and its room is kept while it is hidden."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from gui.widgets.labels import ElidedLabel, plain_label


class PageHeader(QWidget):
    def __init__(self, title: str, purpose: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pageHeader")
        self.title = plain_label(title, wrap=False)
        self.title.setObjectName("pageTitle")  # styled by gui/theme.py
        self.purpose = plain_label(purpose)
        self.purpose.setObjectName("pagePurpose")
        self.next_frame = QFrame()
        self.next_frame.setObjectName("nextStep")
        self.next_label = ElidedLabel()
        self.next_button = QPushButton()
        _keep_room_when_hidden(self.next_button)  # a step without a button is as tall as one with
        _keep_room_when_hidden(self.next_frame)
        self.next_button.setObjectName("primary")
        self.next_button.setAccessibleName("Next step")
        self._next_action: Callable[[], None] | None = None
        self.next_button.clicked.connect(self._on_next_clicked)
        row = QHBoxLayout(self.next_frame)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.next_label, 1)
        row.addWidget(self.next_button)
        self.next_frame.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.purpose)
        layout.addWidget(self.next_frame)

    def set_next(self, text: str, button: str = "", action: Callable[[], None] | None = None) -> None:
        """Show the next step (hidden when ``text`` is empty); ``button`` runs ``action``."""
        self.next_label.setText(text)
        self.next_button.setText(button)
        self.next_button.setAccessibleName(button or "Next step")
        self.next_button.setVisible(bool(button and action))
        self._next_action = action
        self.next_frame.setVisible(bool(text))

    def showEvent(self, event) -> None:
        # The hidden step is styled now, not when it first appears: the theme's padding must not add height then.
        for widget in (self.next_frame, self.next_label, self.next_button):
            widget.ensurePolished()
        super().showEvent(event)

    def _on_next_clicked(self) -> None:
        if self._next_action is not None:
            self._next_action()


def _keep_room_when_hidden(widget: QWidget) -> None:
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)
