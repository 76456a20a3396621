"""RecordsModel: the raw rows of a dataset file as a table, fast on files of millions of rows.

JSONL and CSV/TSV files are indexed lazily: each fetchMore() scans the next chunk of bytes for record start
offsets, and a cell is parsed only when a view asks for it (with a small cache of parsed rows). Row numbers in the
vertical header count records from 1, as the engine's problem report does. A small .json array is read whole;
other file types (parquet, txt, folders, hub ids) show no rows.
"""

from __future__ import annotations

import csv
import io
import json
from array import array
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

CHUNK_BYTES = 1 << 20  # one fetchMore indexes about this much of the file
SMALL_JSON_BYTES = 16 << 20  # a .json array must be parsed whole; above this size it is not previewed
SAMPLE_RECORDS = 200  # records whose keys make up the columns
CACHE_ROWS = 1000
MAX_COLUMNS = 200  # a record with thousands of keys shows its first ones; the engine's report covers the rest
CELL_CHARS = 300  # a cell shows the start of a long value; the table is for finding rows, not reading them
LAZY_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
BAD_ROW = QBrush(QColor("#b91c1c"))
_ROOT = QModelIndex()


class RecordsModel(QAbstractTableModel):
    """A read-only table of the records in one file. ``note`` says why a file shows no rows."""

    def __init__(self, path: str | Path | None = None, parent=None):
        super().__init__(parent)
        self.path: Path | None = None
        self.kind = ""
        self.note = ""
        self._columns: list[str] = []
        self._starts = array("q")  # byte offset where each indexed record starts
        self._scan_pos = 0  # the next byte to index
        self._size = 0
        self._file = None
        self._records: list | None = None  # a whole small .json file
        self._cache: OrderedDict[int, object] = OrderedDict()
        if path is not None:
            self.open(path)

    # -- opening --------------------------------------------------------------------------------------------

    def open(self, path: str | Path) -> None:
        self.beginResetModel()
        self.close()
        self.path = Path(path)
        try:
            self._open()
        except json.JSONDecodeError as exc:
            self.close()
            self.note = (f"The rows cannot be shown: the file is not valid JSON (line {exc.lineno}, column "
                         f"{exc.colno}).")
        except UnicodeDecodeError:
            self.close()
            self.note = "The rows cannot be shown: the file is not UTF-8 text. Save it as UTF-8 and open it again."
        except (OSError, ValueError, RecursionError) as exc:
            self.close()
            self.note = f"The rows cannot be shown: {exc}"
        self.endResetModel()

    def column_names(self) -> list[str]:
        """The columns as the table shows them (from the first records, or a CSV's header)."""
        return list(self._columns)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._records, self.kind, self.note = None, None, "", ""
        self._columns, self._starts, self._scan_pos, self._size = [], array("q"), 0, 0
        self._cache.clear()

    def _open(self) -> None:
        suffix = self.path.suffix.lower()
        if not self.path.is_file():
            self.note = "no rows to show for this source"
            return
        self._size = self.path.stat().st_size
        if suffix == ".json":
            if self._size > SMALL_JSON_BYTES:
                self.note = "this .json file is too large to preview; JSONL previews at any size"
                return
            self._open_json()
            return
        if suffix not in LAZY_TYPES:
            self.note = f"no raw preview for {suffix or 'this'} files"
            return
        self.kind = LAZY_TYPES[suffix]
        self._file = open(self.path, "rb")  # noqa: SIM115 - kept open to read rows on demand; close() closes it
        if self._file.read(3) == b"\xef\xbb\xbf":  # a byte-order mark some editors add
            self._scan_pos = 3
        self._starts, self._scan_pos = self._scan_next(CHUNK_BYTES)
        if self.kind == "jsonl":
            self._columns = _keys([self._record(i) for i in range(min(SAMPLE_RECORDS, len(self._starts)))])
        elif self._starts:  # the first CSV record is the header
            self._columns = self._csv_cells(self._raw(0))[:MAX_COLUMNS] or ["(no header)"]
            self._starts = self._starts[1:]
        if self._starts and not self._columns:
            self._columns = ["record"]

    def _open_json(self) -> None:
        text = self.path.read_text(encoding="utf-8-sig")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as whole:  # the engine reads JSON lines in a .json file too
            self.kind = "jsonl"
            try:
                self._records = [json.loads(line) for line in text.split("\n") if line.strip()]
            except json.JSONDecodeError:
                raise whole from None  # where the file stops being JSON, not where a line does
        else:
            self.kind = "json"
            if isinstance(data, dict):  # {"data": [...]} holds its records in its one array
                arrays = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
                data = arrays[0] if len(arrays) == 1 else [data]
            self._records = data if isinstance(data, list) else [data]
        self._columns = _keys(self._records[:SAMPLE_RECORDS]) or (["record"] if self._records else [])

    # -- lazy indexing ----------------------------------------------------------------------------------------

    def _scan_next(self, budget: int) -> tuple[array, int]:
        """The starts of the records in the next ``budget`` bytes (more if one record is longer), and the byte
        where indexing goes on. Adds nothing yet, so fetchMore can announce the exact rows before adding them."""
        found, pos = array("q"), self._scan_pos
        while pos < self._size:
            self._file.seek(pos)
            data = self._file.read(budget)
            if not data:  # the file shrank since it was opened
                self._size = pos
                break
            consumed = scan_records(data, pos, found, at_end=pos + len(data) >= self._size,
                                    quoted_newlines=self.kind != "jsonl")
            if consumed:
                return found, pos + consumed
            budget *= 2  # a single record longer than the chunk
        return found, pos

    def canFetchMore(self, parent=_ROOT) -> bool:
        return not parent.isValid() and self._file is not None and self._scan_pos < self._size

    def fetchMore(self, parent=_ROOT) -> None:
        if not self.canFetchMore(parent):
            return
        found, scan_pos = self._scan_next(CHUNK_BYTES)
        first = len(self._starts)
        if found:
            self.beginInsertRows(QModelIndex(), first, first + len(found) - 1)
        self._starts.extend(found)
        self._scan_pos = scan_pos
        if found:
            self.endInsertRows()

    def ensure_row(self, row: int) -> bool:
        """Index at least ``row + 1`` records (for jumping to a problem row); False when the file has fewer."""
        while row >= self.rowCount() and self.canFetchMore():
            self.fetchMore()
        return row < self.rowCount()

    # -- reading rows -----------------------------------------------------------------------------------------

    def _record(self, row: int):
        if self._records is not None:
            return self._records[row]
        if row in self._cache:
            self._cache.move_to_end(row)
            return self._cache[row]
        record = self._parse(self._raw(row))
        self._cache[row] = record
        if len(self._cache) > CACHE_ROWS:
            self._cache.popitem(last=False)
        return record

    def _raw(self, row: int) -> str:
        end = self._starts[row + 1] if row + 1 < len(self._starts) else self._scan_pos
        self._file.seek(self._starts[row])
        return self._file.read(end - self._starts[row]).decode("utf-8", "replace")

    def _parse(self, text: str):
        if self.kind == "jsonl":
            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                return _Unreadable(text.strip())
        return dict(zip(self._columns, self._csv_cells(text)))

    def _csv_cells(self, text: str) -> list[str]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if self.kind == "tsv" else ",")
        return next((cells for cells in reader if cells), [])

    def record(self, row: int):
        """The parsed record at ``row`` (0-based), as the file holds it."""
        return self._record(row)

    # -- the table --------------------------------------------------------------------------------------------

    def rowCount(self, parent=_ROOT) -> int:
        if parent.isValid():
            return 0
        return len(self._records) if self._records is not None else len(self._starts)

    def columnCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Vertical:
            return str(section + 1)
        return self._columns[section] if section < len(self._columns) else None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole,
                                               Qt.ItemDataRole.ToolTipRole):
            return None
        if role == Qt.ItemDataRole.ToolTipRole:  # the whole cell (up to the cell limit): the table cuts long text
            return self.data(index) or None
        record = self._record(index.row())
        if isinstance(record, _Unreadable):
            if role == Qt.ItemDataRole.ForegroundRole:
                return BAD_ROW
            return f"not valid JSON: {record.text[:CELL_CHARS]}" if index.column() == 0 else ""
        if role == Qt.ItemDataRole.ForegroundRole:
            return None
        if not isinstance(record, dict):
            return _cell(record) if index.column() == 0 else ""
        key = self._columns[index.column()] if index.column() < len(self._columns) else None
        return _cell(record[key]) if key in record else ""


def scan_records(data: bytes, base: int, out: array, *, at_end: bool, quoted_newlines: bool) -> int:
    """Append to ``out`` the offsets (``base`` + position) of the complete records in ``data``; return the bytes
    consumed. A record is a non-blank line; with ``quoted_newlines`` (CSV) it runs on while a quote is open."""
    pos, consumed, start, quotes = 0, 0, -1, 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        if newline < 0:
            if not at_end:
                break
            newline = len(data)
        line = data[pos:newline]
        if start < 0:
            if not line.strip():  # blank lines separate nothing and are not records
                pos = consumed = newline + 1
                continue
            start, quotes = pos, 0
        if quoted_newlines:
            quotes += line.count(b'"')  # "" escapes keep the count even; an odd count leaves a cell open
        if not quoted_newlines or quotes % 2 == 0 or newline == len(data):
            out.append(base + start)
            start, consumed = -1, newline + 1
        pos = newline + 1
    if at_end and start >= 0:  # a quote left open to the end of the file: the rest is one (broken) record
        out.append(base + start)
        consumed = len(data)
    return min(consumed, len(data))


class _Unreadable:
    def __init__(self, text: str):
        self.text = text


def _keys(records: list) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            keys.update(dict.fromkeys(record))
    return list(keys)[:MAX_COLUMNS]


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text[:CELL_CHARS]
    return text.replace("\r", "").replace("\n", " ⏎ ")
