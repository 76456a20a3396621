"""Runs page: every run folder (from the app or the command line), sorted by any column and filtered by text and
status, with open, resume, chat, export, folder and delete.

Every signal connection has a receiver that lives no longer than this page (a method of it), so Qt drops it with the
page; ``shutdown()`` stops the batch comparison with the API model and waits for it."""

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

from engine.light import api_chat, api_privacy, protocol
from engine.light.run_folder import RunSummary, list_runs
from gui import progress_text
from gui.api_batch_job import ApiBatchJob
from gui.app_state import AppState
from gui.compare_dialog import CompareDialog
from gui.widgets.comparison_view import ComparisonView
from gui.widgets.dialogs import ask, warn
from gui.widgets.empty_state import empty_state
from gui.widgets.labels import plain_label
from gui.widgets.row_table import KEY_ROLE, RowTable

COLUMNS = ("Run", "Status", "Model", "Dataset", "Steps", "Last loss", "Duration", "Started")
ALL = "All statuses"


class RunsPage(QWidget):
    """Signals: sig_open_run(RunSummary), sig_resume_run(RunSummary), sig_chat_run(RunSummary),
    sig_export_run(RunSummary), sig_show_page(str) for the empty state's button."""

    sig_open_run = Signal(object)
    sig_resume_run = Signal(object)
    sig_chat_run = Signal(object)
    sig_export_run = Signal(object)
    sig_show_page = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self.engine_command = engine_command  # for the Costs dialog's engine (None: the app's own)
        self.runs: list[RunSummary] = []
        self.table = RowTable(COLUMNS)
        self.table.setSelectionMode(RowTable.SelectionMode.ExtendedSelection)  # several runs, to compare them
        self.table.setAccessibleName("Runs")
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMNS.index("Started"), Qt.SortOrder.DescendingOrder)  # newest first
        self.table.horizontalHeaderItem(COLUMNS.index("Last loss")).setToolTip(progress_text.LOSS_TIP)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.filter_edit = QLineEdit(placeholderText="Filter by name, model or dataset")
        self.filter_edit.setAccessibleName("Filter runs")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter_changed)
        self.status_combo = QComboBox()
        self.status_combo.setAccessibleName("Status")
        self.status_combo.addItems([ALL, "finished", "running", "paused", "stopped", "failed", "crashed"])
        self.status_combo.currentTextChanged.connect(self._on_filter_changed)
        self.table.itemDoubleClicked.connect(self._on_double_clicked)
        self.detail = plain_label(selectable=True)
        self.buttons = {}
        row = QHBoxLayout()
        for name, handler in (("Refresh", self.refresh), ("Open", self._open_selected),
                              ("Resume", self._resume_selected), ("Chat", self._chat_selected),
                              ("Export…", self._export_selected), ("Compare…", self.compare),
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
        self.api_button = QPushButton("Ask the API model too…")
        self.api_button.setToolTip("Send this run's compared validation prompts to an OpenAI-compatible model and add "
                                   "its answers and ROUGE-L to the table (the Chat page's API model)")
        self.api_button.clicked.connect(self.compare_with_api)
        self.costs_button = QPushButton("Costs…")
        self.costs_button.setToolTip("This run against an API fine-tune and API answers: tokens, prices, time and "
                                     "energy; export the dataset as OpenAI fine-tuning JSONL")
        self.costs_button.clicked.connect(self.show_costs)
        self.api_status = plain_label(selectable=True)
        self.api_status.setObjectName("pagePurpose")
        api_row = QHBoxLayout()
        api_row.addWidget(self.api_button)
        api_row.addWidget(self.costs_button)
        api_row.addWidget(self.api_status, 1)
        self.api_row = QWidget()
        self.api_row.setLayout(api_row)
        api_row.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.api_row)
        layout.addWidget(self.comparison, 1)
        self.api_job = ApiBatchJob(self)
        self.api_job.sig_progress.connect(self.api_status.setText)
        self.api_job.sig_done.connect(self._on_api_done)
        self.api_job.sig_failed.connect(self._on_api_failed)
        self.consent = api_privacy.Consent(self._ask_to_send)
        state.sig_runs_changed.connect(self.refresh)
        self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()  # runs started or ended from the command line since the page was last shown

    def _empty_state(self) -> QWidget:
        go = QPushButton("Go to Train")
        go.clicked.connect(self._go_to_train)
        return empty_state("No runs yet", "Fine-tune a model on the Train page. Runs started from the command line "
                           "(llamadesk-engine train) appear here too.", [go])

    def refresh(self) -> None:
        chosen = self.selected()
        self.runs = list_runs()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.runs))
        for i, run in enumerate(self.runs):
            loss = loss_cell(run)
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
        self.detail.setText("\n".join(filter(None, (str(run.folder.path), losses_line(run),
                                                     f"Error: {run.error}" if run.error else ""))) if run else "")
        self.comparison.setVisible(run is not None and run.has_adapter)
        self.api_row.setVisible(run is not None and run.has_adapter)
        evaluation = run.folder.evaluation() if run is not None and run.has_adapter else None
        self.api_button.setEnabled(bool(evaluation and evaluation.get("answers")) and not self.api_job.is_running())
        if run is not None and run.has_adapter:
            self.comparison.show_result(evaluation)

    def compare_with_api(self) -> bool:
        """Start the batch comparison of the selected run with the API model (set up first if there is none)."""
        run = self.selected()
        if run is None or self.api_job.is_running():
            return False
        endpoint = api_chat.saved_endpoint()
        if endpoint is None:
            from gui.api_model_dialog import ApiModelDialog

            dialog = ApiModelDialog(None, self)
            if not dialog.exec() or dialog.endpoint is None:
                return False
            endpoint = dialog.endpoint
            api_chat.save_endpoint(endpoint)
        count = len((run.folder.evaluation() or {}).get("answers", []))
        if not self.consent.allows(endpoint, f"the {count} compared validation prompts of {run.name}"):
            self.api_status.setText(f"Nothing was sent to {endpoint.host}.")
            return False
        self.api_button.setEnabled(False)
        self.api_status.setText(f"Asking {endpoint.model}…")
        self._api_run = run.folder
        return self.api_job.start(run.folder, endpoint)

    def _on_api_done(self, result: dict) -> None:
        api = result["api"]
        score = f"ROUGE-L {api['rouge_l']:.2f}" if api.get("rouge_l") is not None else "no answers"
        self._on_api_ended(f"Added {api['model']}: {score} on {api['answered']} prompts"
                           + (f"; stopped early: {api['stopped']}" if api.get("stopped") else "") + ".")

    def _on_api_failed(self, text: str) -> None:
        self._on_api_ended(f"Not added: {text}")

    def _on_api_ended(self, text: str) -> None:
        self.api_status.setText(text)
        self._on_table_selection()

    def _ask_to_send(self, endpoint, question: str) -> bool:
        return ask(self, "Send off this computer?", question)

    def shutdown(self) -> None:
        """Stop the batch comparison under way (the answers so far are kept) and wait (bounded) for its thread, so
        the window can close or delete this page meanwhile."""
        self.api_job.shutdown()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def show_costs(self):
        from gui.cost_dialog import CostDialog

        run = self.selected()
        if run is None:
            return None
        dialog = CostDialog(run, self, home=self.state.home, engine_command_=self.engine_command)
        dialog.show()
        return dialog

    def _emit(self, signal) -> None:
        run = self.selected()
        if run is not None:
            signal.emit(run)

    def _open_selected(self) -> None:
        self._emit(self.sig_open_run)

    def _resume_selected(self) -> None:
        self._emit(self.sig_resume_run)

    def _chat_selected(self) -> None:
        self._emit(self.sig_chat_run)

    def _export_selected(self) -> None:
        self._emit(self.sig_export_run)

    def _on_double_clicked(self, _item) -> None:
        self._emit(self.sig_open_run)

    def _on_filter_changed(self, _text: str) -> None:
        self._apply_filter()

    def _go_to_train(self) -> None:
        self.sig_show_page.emit("Train")

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


def loss_cell(run: RunSummary) -> str:
    """The last step's training loss; a run still training says it is the loss so far, not a final one."""
    if run.final_loss is None:
        return "—"
    return progress_text.number(run.final_loss) + (" so far" if run.status == "running" else "")


def losses_line(run: RunSummary) -> str:
    """The run's training losses, named as the end of training names them: the average over the run (the finished
    message's train_loss) and the last step's."""
    if run.status == "running":
        text = progress_text.loss_so_far(run.final_loss, run.steps, run.total_steps)
        return text[:1].upper() + text[1:]
    finished = next((m for m in reversed(run.folder.events()) if isinstance(m, protocol.Finished)), None)
    average = finished.metrics.get("train_loss") if finished is not None else None
    text = progress_text.loss_summary(average, run.final_loss)
    return text[:1].upper() + text[1:]
