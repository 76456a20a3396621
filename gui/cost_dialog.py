"""The cost of each way, for one run: its dataset's tokens, an API fine-tune and N requests a month through the API
(the dated, editable price table), beside the run's measured time and energy; and the dataset as OpenAI fine-tuning
JSONL. The engine computes it (``llamadesk-engine costs RUN --json``), since counting tokens needs the tokenizer."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.light import api_chat, cost_report, prices
from engine.light.run_folder import RunSummary
from gui.engine_client import engine_command, engine_environment
from gui.engine_json import error_text, json_object
from gui.line_process import Exit, LineProcess
from gui.widgets import file_dialogs
from gui.widgets.labels import add_row


class CostDialog(QDialog):
    def __init__(self, run: RunSummary, parent: QWidget | None = None, *, home: str | None = None,
                 engine_command_: list[str] | None = None):
        super().__init__(parent)
        self.run, self._home = run, home
        self._command = engine_command_ or engine_command()
        self._process: LineProcess | None = None
        self.result: dict | None = None
        self.setWindowTitle(f"Costs: {run.name}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        form = QFormLayout()
        self.model = QComboBox()
        self.model.setEditable(True)
        names = list(prices.table().models)
        endpoint = api_chat.saved_endpoint()
        if endpoint is not None and endpoint.model not in names:
            names.insert(0, endpoint.model)
        self.model.addItems(names)
        self.model.setCurrentText(endpoint.model if endpoint else "gpt-4o-mini")
        self.requests = QSpinBox()
        self.requests.setRange(1, 1_000_000_000)
        self.requests.setGroupSeparatorShown(True)
        self.requests.setValue(10_000)
        self.requests.setSuffix(" a month")
        add_row(form, "API model", self.model)
        add_row(form, "Requests", self.requests)
        self.report = QPlainTextEdit(readOnly=True)
        self.report.setAccessibleName("Cost report")
        self.report.setPlaceholderText("Counting the dataset's tokens…")
        buttons = QHBoxLayout()
        self.update_button = QPushButton("Recalculate")
        self.update_button.clicked.connect(self._on_recalculate_clicked)
        self.jsonl_button = QPushButton("Export as OpenAI JSONL…")
        self.jsonl_button.setToolTip("The dataset in OpenAI's fine-tuning format (one {\"messages\": [...]} per line)")
        self.jsonl_button.clicked.connect(self._on_jsonl_clicked)
        prices_button = QPushButton("Edit prices…")
        prices_button.setToolTip("Open your copy of the dated price table (LlamaDesk never fetches prices)")
        prices_button.clicked.connect(self._on_prices_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        for button in (self.update_button, self.jsonl_button, prices_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.report, 1)
        layout.addLayout(buttons)
        self.resize(720, 460)
        self.calculate()

    def is_running(self) -> bool:
        return self._process is not None

    def calculate(self, jsonl: Path | None = None) -> bool:
        if self._process is not None:
            return False
        command = self._command + ["costs", str(self.run.folder.path), "--json", "--api-model",
                                   self.model.currentText().strip() or "gpt-4o-mini", "--requests",
                                   str(self.requests.value())] + (["--jsonl", str(jsonl)] if jsonl else [])
        self.update_button.setEnabled(False)
        self.jsonl_button.setEnabled(False)
        process = LineProcess(self)
        process.sig_stdout_line.connect(self._on_line)
        process.sig_exited.connect(self._on_exited)
        self._process = process
        process.start(command, env=engine_environment(self._home))
        return True

    def _on_recalculate_clicked(self) -> None:
        self.calculate()

    def _on_prices_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(prices.editable_copy())))

    def _on_jsonl_clicked(self) -> None:
        default = str(Path.home() / f"{self.run.name}-openai.jsonl")
        chosen = file_dialogs.save_file(self, "Export as OpenAI JSONL", default, "JSON Lines (*.jsonl)")
        if chosen:
            self.calculate(Path(chosen))

    def _on_line(self, line: str) -> None:
        data = json_object(line)
        if data is None:
            return
        if "error" in data:
            self.report.setPlainText("No costs: " + error_text(data["error"]))
        elif "tokens" in data:
            self.result = data
            self.report.setPlainText(cost_report.text(data))

    def _on_exited(self, end: Exit) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.update_button.setEnabled(True)
        self.jsonl_button.setEnabled(True)
        if end.exit_code != 0 and not self.report.toPlainText().startswith("No costs"):
            tail = (end.stderr_tail or end.not_started or "").strip().splitlines()[-1:]
            self.report.setPlainText("No costs: " + (tail[0] if tail else "the engine stopped"))
