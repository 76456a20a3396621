"""A read-only table whose rows are picked one at a time: the shape of the catalog and run lists. Columns sort by
their values (numbers as numbers, dates as dates) when sorting is on; each row remembers what it shows (``key``),
so a sorted or filtered table still answers which item is selected."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

KEY_ROLE = Qt.ItemDataRole.UserRole + 10
SORT_ROLE = Qt.ItemDataRole.UserRole + 11
MAX_COLUMN_WIDTH = 320


class _Item(QTableWidgetItem):
    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None or type(mine) is not type(theirs):
            return (mine is None, str(mine)) < (theirs is None, str(theirs))  # missing values sort last
        return mine < theirs


class RowTable(QTableWidget):
    def __init__(self, columns: tuple[str, ...], rows: int = 0, parent: QWidget | None = None):
        super().__init__(rows, len(columns), parent)
        self.setHorizontalHeaderLabels(columns)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        # A very long run or model name must not push the other columns out of view: its column stops growing, the
        # name is cut in the middle (names differ at their ends) and the cell's tooltip holds the whole of it.
        self.horizontalHeader().setMaximumSectionSize(MAX_COLUMN_WIDTH)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setWordWrap(False)  # one line a row: a wrapped name or date would not fit the row's height

    def set_row(self, row: int, cells: tuple, *, sort_keys: tuple | None = None, key: Any = None) -> None:
        """Show ``cells`` in ``row``; ``sort_keys`` (one per cell, None for missing) order the columns, ``key``
        identifies the row's item."""
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)  # an item set while sorting is on moves away from its row
        for column, text in enumerate(cells):
            item = _Item(str(text))
            item.setToolTip(str(text))
            item.setData(SORT_ROLE, sort_keys[column] if sort_keys is not None else str(text).lower())
            item.setData(KEY_ROLE, key)
            self.setItem(row, column, item)
        self.setSortingEnabled(sorting)

    def selected_row(self) -> int | None:
        rows = self.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def select_only(self, row: int) -> None:
        """Select ``row`` and nothing else. ``selectRow`` follows the keyboard modifiers held at that moment (with
        Ctrl down it would toggle the row), which a selection made by the program must not."""
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().select(self.model().index(row, 0), flags)
        self.setCurrentCell(row, 0, flags)

    def selected_keys(self) -> list:
        """The keys of every selected row, top to bottom as shown."""
        rows = sorted(index.row() for index in self.selectionModel().selectedRows())
        return [self.item(row, 0).data(KEY_ROLE) for row in rows]

    def selected_key(self) -> Any:
        row = self.selected_row()
        return None if row is None else self.item(row, 0).data(KEY_ROLE)
