"""Runs page: every run folder (from the app or the command line), with open, resume, chat, export, folder and
delete."""

from __future__ import annotations

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from engine.light.run_folder import RunSummary, list_runs
from gui.app_state import AppState
from gui.widgets.dialogs import ask, warn
from gui.widgets.labels import plain_label
from gui.widgets.row_table import RowTable

COLUMNS = ("Run", "Status", "Model", "Dataset", "Steps", "Final loss", "Duration", "Started")


class RunsPage(QWidget):
    """Signals: sig_open_run(RunSummary), sig_resume_run(RunSummary), sig_chat_run(RunSummary),
    sig_export_run(RunSummary)."""

    sig_open_run = Signal(object)
    sig_resume_run = Signal(object)
    sig_chat_run = Signal(object)
    sig_export_run = Signal(object)

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.runs: list[RunSummary] = []
        self.table = RowTable(COLUMNS)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.table.itemDoubleClicked.connect(lambda _: self._emit(self.sig_open_run))
        self.detail = plain_label(selectable=True)
        self.buttons = {}
        row = QHBoxLayout()
        for name, handler in (("Refresh", self.refresh), ("Open", lambda: self._emit(self.sig_open_run)),
                              ("Resume", lambda: self._emit(self.sig_resume_run)),
                              ("Chat", lambda: self._emit(self.sig_chat_run)),
                              ("Export…", lambda: self._emit(self.sig_export_run)), ("Open folder", self._open_folder),
                              ("Delete…", self._delete)):
            button = QPushButton(name)
            button.clicked.connect(handler)
            self.buttons[name] = button
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.detail)
        state.sig_runs_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.runs = list_runs()
        self.table.setRowCount(len(self.runs))
        for i, run in enumerate(self.runs):
            loss = f"{run.final_loss:.4f}" if run.final_loss is not None else "—"
            duration = f"{run.duration_s / 60:.1f} min" if run.duration_s else "—"
            steps = f"{run.steps}/{run.total_steps}" if run.total_steps else "—"
            started = run.started.strftime("%Y-%m-%d %H:%M") if run.started else "—"
            self.table.set_row(i, (run.name, run.status, run.model, run.dataset, steps, loss, duration, started))
        self._on_table_selection()

    def selected(self) -> RunSummary | None:
        row = self.table.selected_row()
        return None if row is None else self.runs[row]

    def _on_table_selection(self) -> None:
        run = self.selected()
        self.buttons["Open"].setEnabled(run is not None)
        self.buttons["Resume"].setEnabled(run is not None and run.resumable)
        self.buttons["Chat"].setEnabled(run is not None and run.has_adapter)
        self.buttons["Export…"].setEnabled(run is not None and run.has_adapter and run.status != "running")
        self.buttons["Export…"].setToolTip("Export the fine-tune as a merged model, GGUF (llama.cpp, LM Studio) or "
                                           "for Ollama, verified against the fine-tune")
        self.buttons["Open folder"].setEnabled(run is not None)
        self.buttons["Delete…"].setEnabled(run is not None and run.status != "running")
        self.detail.setText(f"{run.folder.path}" + (f"\nError: {run.error}" if run and run.error else "") if run else "")

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
