"""Runs page: every run folder (from the app or the command line), sorted by any column and filtered by text and
status, with open, resume, chat, export, folder and delete."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.light.run_folder import RunSummary, list_runs
from gui.app_state import AppState
from gui.compare_dialog import CompareDialog
from gui.widgets.comparison_view import ComparisonView
from gui.widgets.dialogs import ask, warn
from gui.widgets.empty_state import empty_state
from gui.widgets.labels import plain_label
from gui.widgets.row_table import KEY_ROLE, RowTable

COLUMNS = ("Run", "Status", "Model", "Dataset", "Steps", "Final loss", "Duration", "Started")
ALL = "All statuses"


class RunsPage(QWidget):
    """Signals: sig_open_run(RunSummary), sig_resume_run(RunSummary), sig_chat_run(RunSummary),
    sig_export_run(RunSummary), sig_show_page(str) for the empty state's button."""

    sig_open_run = Signal(object)
    sig_resume_run = Signal(object)
    sig_chat_run = Signal(object)
    sig_export_run = Signal(object)
    sig_show_page = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.runs: list[RunSummary] = []
        self.table = RowTable(COLUMNS)
        self.table.setSelectionMode(RowTable.SelectionMode.ExtendedSelection)  # several runs, to compare them
        self.table.setAccessibleName("Runs")
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMNS.index("Started"), Qt.SortOrder.DescendingOrder)  # newest first
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.filter_edit = QLineEdit(placeholderText="Filter by name, model or dataset")
        self.filter_edit.setAccessibleName("Filter runs")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(lambda _: self._apply_filter())
        self.status_combo = QComboBox()
        self.status_combo.setAccessibleName("Status")
        self.status_combo.addItems([ALL, "finished", "running", "paused", "stopped", "failed", "crashed"])
        self.status_combo.currentTextChanged.connect(lambda _: self._apply_filter())
        self.table.itemDoubleClicked.connect(lambda _: self._emit(self.sig_open_run))
        self.detail = plain_label(selectable=True)
        self.buttons = {}
        row = QHBoxLayout()
        for name, handler in (("Refresh", self.refresh), ("Open", lambda: self._emit(self.sig_open_run)),
                              ("Resume", lambda: self._emit(self.sig_resume_run)),
                              ("Chat", lambda: self._emit(self.sig_chat_run)),
                              ("Export…", lambda: self._emit(self.sig_export_run)), ("Compare…", self.compare),
                              ("Open folder", self._open_folder),
                              ("Delete…", self._delete)):
            button = QPushButton(name)
            button.clicked.connect(handler)
            self.buttons[name] = button
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.filter_edit)
        row.addWidget(self.status_combo)
        self.body = QStackedWidget()  # the empty state until there is a run
        self.body.addWidget(self._empty_state())
        self.body.addWidget(self.table)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.detail)
        self.comparison = ComparisonView()
        layout.addWidget(self.comparison, 1)
        state.sig_runs_changed.connect(self.refresh)
        self.refresh()

    def _empty_state(self) -> QWidget:
        go = QPushButton("Go to Train")
        go.clicked.connect(lambda: self.sig_show_page.emit("Train"))
        return empty_state("No runs yet", "Fine-tune a model on the Train page. Runs started from the command line "
                           "(llamadesk-engine train) appear here too.", [go])

    def refresh(self) -> None:
        chosen = self.selected()
        self.runs = list_runs()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.runs))
        for i, run in enumerate(self.runs):
            loss = f"{run.final_loss:.4f}" if run.final_loss is not None else "—"
            duration = f"{run.duration_s / 60:.1f} min" if run.duration_s else "—"
            steps = f"{run.steps:,} / {run.total_steps:,}" if run.total_steps else "—"
            started = run.started.strftime("%Y-%m-%d %H:%M") if run.started else "—"
            keys = (run.name.lower(), run.status, run.model.lower(), run.dataset.lower(), run.steps, run.final_loss,
                    run.duration_s, run.started.timestamp() if run.started else None)
            self.table.set_row(i, (run.name, run.status, run.model, run.dataset, steps, loss, duration, started),
                               sort_keys=keys, key=i)
        self.table.setSortingEnabled(True)
        self.body.setCurrentIndex(1 if self.runs else 0)
        self._apply_filter()
        if chosen is not None:
            self.select(chosen.name)
        self._on_table_selection()

    def _apply_filter(self) -> None:
        words = self.filter_edit.text().lower().split()
        status = self.status_combo.currentText()
        for row in range(self.table.rowCount()):
            run = self.runs[self.table.item(row, 0).data(KEY_ROLE)]
            text = f"{run.name} {run.model} {run.dataset}".lower()
            shown = all(w in text for w in words) and status in (ALL, run.status)
            self.table.setRowHidden(row, not shown)

    def select(self, name: str) -> bool:
        for row in range(self.table.rowCount()):
            if self.runs[self.table.item(row, 0).data(KEY_ROLE)].name == name:
                self.table.select_only(row)
                return True
        return False

    def selected(self) -> RunSummary | None:
        """The selected run, when exactly one is selected (the actions that take one run)."""
        chosen = self.selected_runs()
        return chosen[0] if len(chosen) == 1 else None

    def selected_runs(self) -> list[RunSummary]:
        return [self.runs[key] for key in self.table.selected_keys() if key is not None and key < len(self.runs)]

    def compare(self) -> CompareDialog | None:
        """Open the comparison of the selected runs (two or more)."""
        runs = self.selected_runs()
        if len(runs) < 2:
            return None
        dialog = CompareDialog(runs, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _on_table_selection(self) -> None:
        run = self.selected()
        self.buttons["Compare…"].setEnabled(len(self.selected_runs()) >= 2)
        self.buttons["Compare…"].setToolTip("Select two or more runs (Ctrl+click) to overlay their curves and list "
                                            "what differs")
        self.buttons["Open"].setEnabled(run is not None)
        self.buttons["Resume"].setEnabled(run is not None and run.resumable)
        self.buttons["Chat"].setEnabled(run is not None and run.has_adapter)
        self.buttons["Export…"].setEnabled(run is not None and run.has_adapter and run.status != "running")
        self.buttons["Export…"].setToolTip("Export the fine-tune as a merged model, GGUF (llama.cpp, LM Studio) or "
                                           "for Ollama, verified against the fine-tune")
        self.buttons["Open folder"].setEnabled(run is not None)
        self.buttons["Delete…"].setEnabled(run is not None and run.status != "running")
        self.detail.setText(f"{run.folder.path}" + (f"\nError: {run.error}" if run and run.error else "") if run else "")
        self.comparison.setVisible(run is not None and run.has_adapter)
        if run is not None and run.has_adapter:
            self.comparison.show_result(run.folder.evaluation())

    def _emit(self, signal) -> None:
        run = self.selected()
        if run is not None:
            signal.emit(run)

    def _open_folder(self) -> None:
        run = self.selected()
        if run is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(run.folder.path)))

    def _delete(self) -> None:
        run = self.selected()
        if run is None:
            return
        answer = ask(self, "Delete run", f"Delete the run '{run.name}' and all its checkpoints "
                                      "and adapter? This cannot be undone.")
        if answer:
            try:
                run.folder.delete()
            except (OSError, RuntimeError) as exc:
                warn(self, "Delete run", str(exc))
            self.state.sig_runs_changed.emit()
