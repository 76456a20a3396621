"""The header every page opens with: its title, and one line on what the page is for (plain text)."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from gui.widgets.labels import plain_label


class PageHeader(QWidget):
    def __init__(self, title: str, purpose: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pageHeader")
        self.title = plain_label(title, wrap=False)
        self.title.setObjectName("pageTitle")  # styled by gui/theme.py
        self.purpose = plain_label(purpose)
        self.purpose.setObjectName("pagePurpose")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.purpose)
