"""A read-only table whose rows are picked one at a time: the shape of the catalog and run lists."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget


class RowTable(QTableWidget):
    def __init__(self, columns: tuple[str, ...], rows: int = 0, parent: QWidget | None = None):
        super().__init__(rows, len(columns), parent)
        self.setHorizontalHeaderLabels(columns)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def set_row(self, row: int, cells: tuple) -> None:
        for column, text in enumerate(cells):
            self.setItem(row, column, QTableWidgetItem(str(text)))

    def selected_row(self) -> int | None:
        rows = self.selectionModel().selectedRows()
        return rows[0].row() if rows else None
