"""Data page: open a dataset (button or drag-and-drop), see how the engine reads it — format, problems, token
lengths — and the first examples exactly as the model will see them, with the trained tokens highlighted.

Everything shown comes from ``engine data check --json`` run in the background (DataCheckJob), except the raw
rows, which RecordsModel reads lazily from the file so that they appear at once, even for millions of rows.
Dataset text is user data: it goes into plain-text widgets and QTextCursor.insertText, never into HTML.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import resources
from engine.light import demo_settings
from engine.light.dataset_formats import FORMAT_DESCRIPTIONS, FORMATS
from gui import theme
from gui.app_state import AppState
from gui.data_check_job import DataCheckJob
from gui.widgets.empty_state import empty_state
from gui.widgets.labels import plain_label
from gui.widgets.lazy_plot import LazyPlot
from gui.widgets.records_model import RecordsModel

AUTO_DETECT = "Auto-detect"
PROBLEM_COLUMNS = ("Severity", "Row", "Line", "Field", "Message")
FILE_FILTER = "Datasets (*.json *.jsonl *.ndjson *.csv *.tsv *.parquet *.txt);;All files (*)"
def _message_style(kind: str) -> str:
    c = theme.colors()
    edge = c.error if kind == "error" else c.accent
    return (f"background:{c.alternate}; color:{c.text}; border-left: 3px solid {edge}; padding:6px; "
            "border-radius:4px;")


class DatasetPage(QWidget):
    """Signals: sig_jump_to_row(int) with the record number (from 1) of an activated problem;
    sig_checked(dict) with each check's result."""

    sig_jump_to_row = Signal(int)
    sig_checked = Signal(dict)

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self.path = ""
        self.result: dict | None = None
        self.job = DataCheckJob(self, command=engine_command)
        self.records = RecordsModel(parent=self)
        self.setAcceptDrops(True)
        self._checked: dict = {}  # the run settings of the check under way, applied when its rows are usable
        self._build_bar()
        self._build_results()
        self._layout()
        self.button_open.clicked.connect(self._on_open_clicked)
        self.button_check.clicked.connect(self.run_check)
        self.button_cancel.clicked.connect(self._on_cancel_clicked)
        self.columns_edit.returnPressed.connect(self.run_check)
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
            self.format_combo.addItem(name, name)
            self.format_combo.setItemData(self.format_combo.count() - 1, FORMAT_DESCRIPTIONS[name],
                                          Qt.ItemDataRole.ToolTipRole)
        self.columns_edit = QLineEdit(placeholderText="column mapping, e.g. instruction=question output=answer")
        self.columns_edit.setAccessibleName("Column mapping")
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
        for widget in (self.button_open, plain_label("Format:", wrap=False), self.format_combo, self.columns_edit,
                       self.button_check, self.button_cancel):
            bar.addWidget(widget)
        bar.setStretchFactor(self.columns_edit, 1)
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
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(data)
        splitter.addWidget(self.tabs)
        self.body = QStackedWidget()  # the empty state until a file is opened, then its rows and checks
        self.body.addWidget(self._empty_state())
        self.body.addWidget(splitter)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        for widget in (self.path_label, self.message, self.status, self.detection_label, self.summary_label):
            layout.addWidget(widget)
        layout.addWidget(self.body, 1)

    def _empty_state(self) -> QWidget:
        self.empty_open = QPushButton("Open a file…")
        self.empty_open.clicked.connect(self._on_open_clicked)
        self.empty_sample = QPushButton("Use the bundled sample")
        self.empty_sample.setToolTip("Harbor Lights: questions and answers about a fictional island, the demo's data")
        self.empty_sample.clicked.connect(self.open_sample)
        return empty_state("Drop a dataset file here", "Instructions (alpaca), conversations (ShareGPT or OpenAI "
                           "messages) or plain text, as JSON, JSONL, CSV, Parquet or TXT. LlamaDesk detects the format "
                           "and checks every row.", [self.empty_open, self.empty_sample])

    # -- opening and checking -------------------------------------------------------------------------------

    def open_path(self, path: str | Path) -> None:
        """Show the file's rows at once and start the check."""
        self.path = str(path)
        self.path_label.setText(self.path)
        self.body.setCurrentIndex(1)
        self.records.open(self.path)
        self.data_note.setText(self.records.note)
        self.run_check()

    def open_sample(self) -> None:
        self.open_path(str(resources.path(demo_settings.SAMPLE)))

    def run_check(self) -> None:
        if not self.path:
            self._show_message("Open a dataset file first (or drop one onto this page).", "info")
            return
        try:
            choices = self._choices()
        except ValueError as exc:
            self._show_message(f"Column mapping: {exc}\n→ write FIELD=COLUMN items, e.g. output=answer", "error")
            return
        self._clear_results()
        self.message.hide()
        self.status.setText("Checking…")
        self.button_cancel.setEnabled(True)
        # The whole run config goes to the check, so a run with these settings finds the dataset in the cache.
        self._checked = choices
        self.job.start(self.state.config.with_values(choices), home=self.state.home)

    def _choices(self) -> dict:
        """What this page sets in the run config: the dataset, its format and its column mapping."""
        columns = {}
        for item in shlex.split(self.columns_edit.text()):
            field, sep, column = item.partition("=")
            if not sep or not field or not column:
                raise ValueError(f"'{item}' is not FIELD=COLUMN")
            columns[field] = column
        return {"dataset": self.path, "data.format": self.format_combo.currentData(), "data.columns": columns}

    def _on_state_config_changed(self, config, origin) -> None:
        """The format and the column mapping are run settings: show them as set elsewhere (a loaded config)."""
        if origin is self:
            return
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(config.data.format)))
        self.columns_edit.setText(" ".join(f"{k}={v}" for k, v in config.data.columns.items()))

    def _on_open_clicked(self) -> None:
        start = str(Path(self.path).parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a dataset", start, FILE_FILTER)
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
        self._show_message(text, "error")

    def _on_job_done(self, result: dict) -> None:
        self.button_cancel.setEnabled(False)
        self.status.clear()
        self.result = result
        report, stats = result.get("report", {}), result.get("stats", {})
        detection = result.get("detection", {})
        template = " (the model has no chat template; LlamaDesk's default is used)" \
            if result.get("template") == "default" else ""
        self.detection_label.setText(f"Format: {detection.get('format', '?')} — {detection.get('reason', '')}"
                                     f"{template}")
        self._show_summary(report, stats)
        self._show_problems(report)
        self._show_preview(result.get("preview", []))
        self._show_histogram(stats)
        if report.get("rows_usable", 0) > 0:
            self.state.update(self._checked, origin=self)
            longest = (stats.get("percentiles") or {}).get("max")
            if longest:
                self.state.set_longest_row(self.state.config.dataset, self.state.config.model, int(longest))
        else:
            self._show_message("No usable rows: every row has a problem.\n→ fix the problems listed below, or "
                               "choose the right format and map your columns", "error")
        self.sig_checked.emit(result)

    def _show_summary(self, report: dict, stats: dict) -> None:
        p = stats.get("percentiles") or {}
        text = (f"{report.get('rows_read', 0):,} rows read · {report.get('rows_usable', 0):,} usable · "
                f"{report.get('rows_skipped', 0):,} skipped · {stats.get('total_tokens', 0):,} tokens "
                f"({stats.get('trained_tokens', 0):,} trained)")
        if p:
            text += f" · length p50 {p.get('p50', 0)} / p95 {p.get('p95', 0)} / max {p.get('max', 0)}"
        self.summary_label.setText(text)

    def _show_problems(self, report: dict) -> None:
        problems = report.get("problems", [])
        self.problems.setRowCount(len(problems))
        for row, problem in enumerate(problems):
            cells = (problem.get("severity", ""), problem.get("row"), problem.get("line"), problem.get("field", ""),
                     problem.get("message", ""))
            for column, value in enumerate(cells):
                item = QTableWidgetItem("" if value is None else str(value))
                self.problems.setItem(row, column, item)
            self.problems.item(row, 1).setData(Qt.ItemDataRole.UserRole, problem.get("row"))
        self.problems.resizeColumnsToContents()
        total = report.get("problems_total", len(problems))
        shown = f"{len(problems)} of {total}" if total > len(problems) else str(total)
        self.tabs.setTabText(0, f"Problems ({shown})")

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

    def _show_preview(self, examples: list[dict]) -> None:
        self.preview.clear()
        cursor = QTextCursor(self.preview.document())
        plain, trained, heading = QTextCharFormat(), QTextCharFormat(), QTextCharFormat()
        trained.setBackground(QColor(theme.colors().trained))
        heading.setFontWeight(QFont.Weight.Bold)
        for n, example in enumerate(examples):
            cut = " · truncated at the cutoff" if example.get("truncated") else ""
            cursor.insertText(("\n\n" if n else "") + f"Row {example.get('row')} · {example.get('tokens')} tokens"
                              f"{cut}\n", heading)
            for text, is_trained in example.get("segments", []):
                cursor.insertText(text, trained if is_trained else plain)

    def _show_histogram(self, stats: dict) -> None:
        import pyqtgraph as pg  # deferred: see LazyPlot

        if self.histogram.created:
            self.histogram.plot.clear()
        self.histogram_bars = self.cutoff_line = None
        histogram = stats.get("histogram") or {}
        edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
        if counts and len(edges) == len(counts) + 1:
            self.histogram_bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush="#60a5fa")
            self.histogram.plot.addItem(self.histogram_bars)
        cutoff, share = stats.get("cutoff") or 0, stats.get("truncated_share") or 0.0
        if cutoff:
            self.cutoff_line = pg.InfiniteLine(pos=cutoff, angle=90, movable=False, pen=pg.mkPen("#dc2626", width=2),
                                               label=f"cutoff {cutoff} · {share:.1%} cut", labelOpts={"position": 0.9})
            self.histogram.plot.addItem(self.cutoff_line)
        self.truncated_label.setText(f"{share:.1%} of the rows ({stats.get('truncated_rows', 0):,}) are longer "
                                     f"than the cutoff of {cutoff:,} tokens and will be cut.")

    def _clear_results(self) -> None:
        self.result = None
        for label in (self.detection_label, self.summary_label, self.truncated_label):
            label.clear()
        self.problems.setRowCount(0)
        self.tabs.setTabText(0, "Problems")
        self.preview.clear()
        if self.histogram.created:
            self.histogram.plot.clear()
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
