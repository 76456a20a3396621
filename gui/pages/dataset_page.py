"""Data page: open a dataset (button or drag-and-drop), see how the engine reads it — format, problems, token
lengths — and the first examples exactly as the model will see them, with the trained tokens highlighted.

Everything shown comes from ``engine data check --json`` run in the background (DataCheckJob), except the raw
rows, which RecordsModel reads lazily from the file so that they appear at once, even for millions of rows.
Dataset text is user data: it goes into plain-text widgets and QTextCursor.insertText, never into HTML.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import resources
from engine.light import demo_settings
from engine.light.dataset_formats import FORMAT_DESCRIPTIONS, FORMAT_LABELS, FORMATS, PROMPT_COMPLETION
from gui import theme
from gui.app_state import AppState
from gui.data_check_job import DataCheckJob
from gui.widgets import check_views, file_dialogs
from gui.widgets.check_views import clear_histogram, show_histogram, show_preview
from gui.widgets.column_picker import ColumnPicker
from gui.widgets.empty_state import empty_state
from gui.widgets.labels import plain_label
from gui.widgets.lazy_plot import LazyPlot
from gui.widgets.records_model import RecordsModel

AUTO_DETECT = "Auto-detect"
PROBLEM_COLUMNS = ("Severity", "Row", "Line", "Field", "Message")
FILE_FILTER = "Datasets (*.json *.jsonl *.ndjson *.csv *.tsv *.parquet *.txt);;All files (*)"
# Below this many usable rows a fine-tune mostly memorises; the page says so (the run is still allowed).
FEW_ROWS = 10


def _message_style(kind: str) -> str:
    c = theme.colors()
    edge = c.error if kind == "error" else c.accent
    return (f"background:{c.alternate}; color:{c.text}; border-left: 3px solid {edge}; padding:6px; "
            "border-radius:4px;")


class DatasetPage(QWidget):
    """Shows one file at a time (``path``) with its check. The dataset training uses is ``state.config.dataset``: a
    file becomes it only when its check finds usable rows, so a broken file is shown with its problems and never
    half-replaces the one in use (the page says which is in use, with a button back to it).

    Signals: sig_jump_to_row(int) with the record number (from 1) of an activated problem; sig_checked(dict) with
    each check's result, and with {"error": …} when a check fails."""

    sig_jump_to_row = Signal(int)
    sig_checked = Signal(dict)
    sig_check_started = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self.path = ""
        self.result: dict | None = None
        self.error: dict = {}  # the last check's failure, as {"message", "where", "hint", …}
        self.in_use: dict | None = None  # the last passing check of state.config.dataset
        self.job = DataCheckJob(self, command=engine_command)
        self.records = RecordsModel(parent=self)
        self.setAcceptDrops(True)
        self._checked: dict = {}  # the run settings of the check under way, applied when its rows are usable
        self._sizes_with_rows: list[int] | None = None  # the splitter's sizes while a file without rows is shown
        self._data_settings = (state.config.dataset, state.config.data.format, dict(state.config.data.columns))
        self._build_bar()
        self._build_results()
        self._layout()
        self.button_open.clicked.connect(self._on_open_clicked)
        self.button_check.clicked.connect(self.run_check)
        self.button_cancel.clicked.connect(self._on_cancel_clicked)
        self.format_combo.activated.connect(self._on_format_chosen)
        self.button_in_use.clicked.connect(self._on_show_in_use)
        self.problems.activated.connect(self._on_problems_activated)
        self.job.sig_status.connect(self.status.setText)
        self.job.sig_done.connect(self._on_job_done)
        self.job.sig_failed.connect(self._on_job_failed)
        state.sig_config_changed.connect(self._on_state_config_changed)

    def _build_bar(self) -> None:
        self.button_open = QPushButton("Open…")
        self.path_label = plain_label("Drop a dataset file here, or open one.")
        self.format_combo = QComboBox()
        self.format_combo.setAccessibleName("Dataset format")
        self.format_combo.addItem(AUTO_DETECT, None)
        for name in FORMATS:
            self.format_combo.addItem(FORMAT_LABELS[name], name)
            self.format_combo.setItemData(self.format_combo.count() - 1, FORMAT_DESCRIPTIONS[name],
                                          Qt.ItemDataRole.ToolTipRole)
        self.format_combo.setToolTip("How the file's rows are read. Auto-detect recognises the usual column names; "
                                     "choose a format to pick the columns yourself.")
        self.picker = ColumnPicker()
        self.picker.hide()
        self.in_use_note = plain_label(selectable=True)
        self.button_in_use = QPushButton("Show the dataset in use")
        self.in_use_bar = QWidget()
        in_use_row = QHBoxLayout(self.in_use_bar)
        in_use_row.setContentsMargins(0, 0, 0, 0)
        in_use_row.addWidget(self.in_use_note, 1)
        in_use_row.addWidget(self.button_in_use)
        self.in_use_bar.hide()
        self.button_check = QPushButton("Check")
        self.button_cancel = QPushButton("Cancel")
        self.button_cancel.setEnabled(False)
        self.message = plain_label(selectable=True)
        self.message.hide()
        self.status = plain_label(selectable=True)
        self.detection_label = plain_label(selectable=True)
        self.summary_label = plain_label(selectable=True)

    def _build_results(self) -> None:
        self.data_table = QTableView()
        self.data_table.setAccessibleName("Dataset rows")
        self.data_table.setModel(self.records)
        self.data_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.data_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.data_table.setWordWrap(False)
        self.data_table.horizontalHeader().setDefaultSectionSize(240)
        self.data_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # no per-row measuring
        self.data_note = plain_label(selectable=True)

        self.problems = QTableWidget(0, len(PROBLEM_COLUMNS))
        self.problems.setHorizontalHeaderLabels(PROBLEM_COLUMNS)
        self.problems.setAccessibleName("Problems found")
        self.problems.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.problems.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.problems.horizontalHeader().setStretchLastSection(True)
        self.problems.verticalHeader().hide()

        self.preview = QPlainTextEdit(readOnly=True)
        self.preview.setAccessibleName("Examples as the model sees them")
        self.preview.setAcceptDrops(False)  # a file dropped here opens it, like anywhere on the page
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.histogram = LazyPlot({"bottom": "tokens per row (before the cutoff)", "left": "rows"})
        self.histogram_bars = None  # pyqtgraph BarGraphItem, once a check has run
        self.cutoff_line = None  # pyqtgraph InfiniteLine at the cutoff
        self.truncated_label = plain_label(selectable=True)

    def _layout(self) -> None:
        bar = QHBoxLayout()
        for widget in (self.button_open, plain_label("Format:", wrap=False), self.format_combo, self.button_check,
                       self.button_cancel):
            bar.addWidget(widget)
        bar.addStretch(1)
        data = QWidget()
        data_layout = QVBoxLayout(data)
        data_layout.setContentsMargins(0, 0, 0, 0)
        data_layout.addWidget(self.data_table, 1)
        data_layout.addWidget(self.data_note)
        preview = QWidget()
        preview_layout = QVBoxLayout(preview)
        preview_layout.addWidget(plain_label("Highlighted: the tokens the model learns from. The rest is context."))
        preview_layout.addWidget(self.preview, 1)
        lengths = QWidget()
        lengths_layout = QVBoxLayout(lengths)
        lengths_layout.addWidget(self.histogram, 1)
        lengths_layout.addWidget(self.truncated_label)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.problems, "Problems")
        self.tabs.addTab(preview, "As the model sees it")
        self.tabs.addTab(lengths, "Token lengths")
        self.splitter = splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(data)
        splitter.addWidget(self.tabs)
        self.body = QStackedWidget()  # the empty state until a file is opened, then its rows and checks
        self.body.addWidget(self._empty_state())
        self.body.addWidget(splitter)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        for widget in (self.path_label, self.picker, self.in_use_bar, self.message, self.status,
                       self.detection_label, self.summary_label):
            layout.addWidget(widget)
        layout.addWidget(self.body, 1)

    def _empty_state(self) -> QWidget:
        self.empty_open = QPushButton("Open a file…")
        self.empty_open.clicked.connect(self._on_open_clicked)
        self.empty_sample = QPushButton("Use the bundled sample")
        self.empty_sample.setToolTip("Harbor Lights: questions and answers about a fictional island, the demo's data")
        self.empty_sample.clicked.connect(self.open_sample)
        return empty_state("Drop a dataset file here", "Questions and answers, conversations or plain text, as JSON, "
                           "JSONL, CSV, Parquet or TXT. LlamaDesk recognises the format and checks every row; you "
                           "can pick the columns yourself.", [self.empty_open, self.empty_sample])

    # -- opening and checking -------------------------------------------------------------------------------

    def open_path(self, path: str | Path) -> None:
        """Show the file's rows at once and start the check. The dataset in use keeps its format and columns; another
        file starts on auto-detect."""
        config = self.state.config
        if str(path) == config.dataset:
            self._open(str(path), config.data.format, config.data.columns)
        else:
            self._open(str(path), None, {})

    def _open(self, path: str, fmt: str | None, mapping: dict) -> None:
        self.path, self.error = path, {}
        self.path_label.setText(self.path)
        self.body.setCurrentIndex(1)
        self.records.open(self.path)
        self.data_note.setText(self.records.note)
        self.data_table.setVisible(not self.records.note)  # a file whose rows cannot be shown: the note says why
        if self.records.note and self._sizes_with_rows is None:  # the note takes its line, the problems the room
            self._sizes_with_rows = self.splitter.sizes()
            self.splitter.setSizes([self.data_note.sizeHint().height(), max(1, self.splitter.height())])
        elif not self.records.note and self._sizes_with_rows is not None:  # rows again: the room they had
            self.splitter.setSizes(self._sizes_with_rows)
            self._sizes_with_rows = None
        self.set_columns(fmt, mapping)
        self._show_in_use()
        self.run_check()

    def open_sample(self) -> None:
        self.open_path(str(resources.path(demo_settings.SAMPLE)))

    def run_check(self) -> None:
        if not self.path:
            self._show_message("Open a dataset file first (or drop one onto this page).", "info")
            return
        choices = self._choices()
        self._clear_results()
        self.message.hide()
        self.status.setText("Checking…")
        self.button_cancel.setEnabled(True)
        # The whole run config goes to the check, so a run with these settings finds the dataset in the cache.
        self._checked = choices
        self.job.start(self.state.config.with_values(choices), home=self.state.home)
        self.sig_check_started.emit()

    def _choices(self) -> dict:
        """What this page sets in the run config: the dataset, its format and its column mapping."""
        fmt = self.format_combo.currentData()
        columns = self.picker.mapping() if fmt and self.picker.format == fmt else {}
        return {"dataset": self.path, "data.format": fmt, "data.columns": columns}

    def set_columns(self, fmt: str | None, mapping: dict[str, str]) -> None:
        """Choose the format and a column per field, as the user does with the pickers (auto-detect: none)."""
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(fmt)))
        self.picker.show_fields(fmt, self._file_columns() if fmt else [], mapping)

    def _file_columns(self) -> list[str]:
        """The shown file's columns: from the engine's answer when it named them, else as the table reads them."""
        named = self.error.get("columns") if self.error.get("where") in (self.path, "") else None
        return list(named) if named else [c for c in self.records.column_names() if c != "record"]

    def _on_format_chosen(self, _index: int) -> None:
        fmt = self.format_combo.currentData()
        mapping = (self.result or {}).get("detection", {}).get("mapping", {}) if fmt else {}
        self.picker.show_fields(fmt, self._file_columns() if fmt else [], mapping)

    def _on_state_config_changed(self, config, origin) -> None:
        """The dataset, its format and its column mapping are run settings: show them as set elsewhere (a loaded
        settings file, the last session, the demo)."""
        data = (config.dataset, config.data.format, dict(config.data.columns))
        changed, self._data_settings = data != self._data_settings, data
        if origin is self or not changed:
            self._show_in_use()
            return
        if config.dataset and config.dataset != self.path:
            self.in_use = None
            self._open(config.dataset, config.data.format, config.data.columns)
        elif config.dataset == self.path:
            self.set_columns(config.data.format, config.data.columns)
        self._show_in_use()

    def guide_facts(self) -> dict:
        """What the guide shows about the dataset: the one in use (or, while none is, the file shown), its usable
        rows once checked, its problem, and whether a check of it is running."""
        dataset = self.state.config.dataset or self.path
        shown = dataset == self.path
        problem = ""
        if shown and self.error:
            problem = str(self.error.get("message", ""))
        elif shown and self.result is not None and not self.result.get("report", {}).get("rows_usable"):
            problem = "no usable rows"
        rows = self.in_use_rows() if self.state.config.dataset else None
        return {"dataset": dataset, "dataset_rows": rows, "dataset_problem": problem,
                "dataset_checking": shown and self.job.is_running()}

    def in_use_rows(self) -> int | None:
        """Usable rows of the dataset training uses, when a check of it (with the current settings) passed."""
        if self.in_use and self.in_use.get("source") == self.state.config.dataset:
            return self.in_use.get("report", {}).get("rows_usable")
        return None

    def _show_in_use(self) -> None:
        """When the shown file is not the one training uses, say so and offer the way back."""
        in_use = self.state.config.dataset
        shown_elsewhere = bool(in_use) and bool(self.path) and in_use != self.path
        if shown_elsewhere:
            rows = self.in_use_rows()
            counted = f" ({rows:,} usable rows)" if rows is not None else ""
            self.in_use_note.setText(f"Training uses {Path(in_use).name}{counted}. {Path(self.path).name} becomes "
                                     "the training data once its check finds usable rows.")
        self.in_use_bar.setVisible(shown_elsewhere)

    def _on_show_in_use(self) -> None:
        if self.state.config.dataset:
            self.open_path(self.state.config.dataset)

    def _on_open_clicked(self) -> None:
        inside_app = self.path and Path(self.path).is_relative_to(resources.path("."))
        start = str(Path(self.path).parent) if self.path and not inside_app else ""  # the sample's folder is the app's
        path = file_dialogs.open_file(self, "Open a dataset", start, FILE_FILTER)
        if path:
            self.open_path(path)

    def _on_cancel_clicked(self) -> None:
        self.job.cancel()
        self.button_cancel.setEnabled(False)
        self.status.setText("Check cancelled.")

    def dragEnterEvent(self, event) -> None:
        if _dropped_path(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = _dropped_path(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.open_path(path)

    # -- results ----------------------------------------------------------------------------------------------

    def _on_job_failed(self, text: str) -> None:
        self.button_cancel.setEnabled(False)
        self.status.clear()
        self.error = dict(self.job.last_error) or {"message": text}
        if self.path == self.state.config.dataset:
            self.in_use = None  # the dataset in use no longer passes: the guide says it needs fixing
        if "columns" in self.error:  # the format or its columns: the pickers do here what --columns does
            if self.format_combo.currentData() is None:
                self.set_columns(PROMPT_COMPLETION, {})
            else:
                self.picker.show_fields(self.format_combo.currentData(), self._file_columns(), self.picker.mapping())
            text = (f"{Path(self.path).name}: {self.error.get('message')}\n→ choose the format above and the column "
                    "that holds each field, then press Check")
        self._show_message(text, "error")
        self._show_problems({"problems": [{"severity": "error", "row": None, "line": None, "field": "",
                                           "message": self.error.get("message", text)}]})
        self.tabs.setCurrentIndex(0)
        if not self.records.rowCount() and not self.records.note:
            self.data_note.setText("The rows cannot be shown: see the problem above.")
        self._show_in_use()
        self.sig_checked.emit({"error": self.error, "source": self.path})

    def _on_job_done(self, result: dict) -> None:
        self.button_cancel.setEnabled(False)
        self.status.clear()
        self.result = result
        report, stats = result.get("report", {}), result.get("stats", {})
        detection = result.get("detection", {})
        template = " (the model has no chat template; LlamaDesk's default is used)" \
            if result.get("template") == "default" else ""
        unused = [c for c in self._file_columns() if c not in detection.get("mapping", {}).values()]
        not_read = f"\nNot used for training: the column{'s' if len(unused) > 1 else ''} {', '.join(unused)}." \
            if unused and detection.get("format") != "text" else ""
        shown_format = FORMAT_LABELS.get(detection.get("format"), detection.get("format", "?"))
        self.detection_label.setText(f"Format: {shown_format} — {detection.get('reason', '')}"
                                     f"{template}{not_read}")
        self._show_summary(report, stats)
        self._show_problems(report)
        self.tabs.setCurrentIndex(0 if report.get("problems_total") else 1)  # nothing to fix: the examples
        show_preview(self.preview, result.get("preview", []))
        self.histogram_bars, self.cutoff_line, sentence = show_histogram(self.histogram, stats)
        self.truncated_label.setText(sentence)
        usable = report.get("rows_usable", 0)
        if usable > 0:
            self.in_use = result
            self.state.update(self._checked, origin=self)
            longest = (stats.get("percentiles") or {}).get("max")
            if longest:
                self.state.set_longest_row(self.state.config.dataset, self.state.config.model, int(longest))
            if usable < FEW_ROWS:
                self._show_message(f"Only {usable} usable row{'s' if usable != 1 else ''}: a fine-tune learns from "
                                   "examples, and this few mostly teaches the model to repeat them.\n→ a few dozen "
                                   "varied examples or more work better; you can still train on these.", "info")
        else:
            if self.path == self.state.config.dataset:
                self.in_use = None
            self._show_message("No usable rows: every row has a problem.\n→ fix the problems listed below, or "
                               "choose the right format and map your columns", "error")
        self._show_in_use()
        self.sig_checked.emit(result)

    def _show_summary(self, report: dict, stats: dict) -> None:
        text, tip = check_views.summary(report, stats)
        self.summary_label.setText(text)
        self.summary_label.setToolTip(tip)

    def _show_problems(self, report: dict) -> None:
        self.tabs.setTabText(0, check_views.show_problems(self.problems, report))

    def _on_problems_activated(self, index: QModelIndex) -> None:
        row = self.problems.item(index.row(), 1).data(Qt.ItemDataRole.UserRole)
        if isinstance(row, int) and row > 0:
            self.sig_jump_to_row.emit(row)
            self.select_data_row(row)

    def select_data_row(self, row: int) -> None:
        """Select record ``row`` (from 1) in the raw data table, indexing further into the file if needed."""
        if not self.records.ensure_row(row - 1):
            return
        self.data_table.selectRow(row - 1)
        self.data_table.scrollTo(self.records.index(row - 1, 0), QAbstractItemView.ScrollHint.PositionAtCenter)

    def _clear_results(self) -> None:
        self.result, self.error = None, {}
        for label in (self.detection_label, self.summary_label, self.truncated_label):
            label.clear()
        self.problems.setRowCount(0)
        self.tabs.setTabText(0, "Problems")
        self.preview.clear()
        clear_histogram(self.histogram)
        self.histogram_bars = self.cutoff_line = None

    def _show_message(self, text: str, kind: str) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(_message_style(kind))
        self.message.setProperty("kind", kind)
        self.message.show()


def _dropped_path(mime) -> str:
    """The first local file or folder in a drag, or ''."""
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile():
            return url.toLocalFile()
    return ""
