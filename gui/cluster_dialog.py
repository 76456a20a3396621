"""Run on a cluster: writes a job folder for the Train page's settings (``llamadesk-engine cluster``) and says how to
start it with Slurm, SkyPilot or torchrun. Nothing is sent anywhere: the user copies the folder to the cluster."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.light import config as run_config
from engine.light import paths
from gui.engine_client import engine_command, engine_environment
from gui.engine_json import error_text, json_object
from gui.line_process import Exit, LineProcess
from gui.widgets import file_dialogs
from gui.widgets.labels import add_row, plain_label


class ClusterDialog(QDialog):
    def __init__(self, config: run_config.RunConfig, *, home: str | None = None,
                 engine_command_: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.config, self._home = config, home
        self._command = engine_command_ or engine_command()
        self._process: LineProcess | None = None
        self.result: dict | None = None
        self.setWindowTitle("Run on a cluster")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label(
            "Writes a folder that trains this run on a cluster with PyTorch's torchrun: the engine, its requirements, "
            "the dataset (tokenized), a local model, a launch script and Slurm and SkyPilot templates. Copy it to the "
            "cluster and start it there; copy the run folder it makes back into the runs folder to open it here."))
        form = QFormLayout()
        self.nodes = _spin(1, 1024, 2, "Nodes")
        self.gpus = _spin(1, 64, 8, "GPUs per node")
        self.accelerator = QLineEdit("A100")
        self.accelerator.setAccessibleName("GPU type for SkyPilot")
        self.accelerator.setToolTip("SkyPilot's name for the GPU each node should have, e.g. A100, H100, L4")
        name = config.run_name or Path(config.dataset).stem or "run"
        self.folder = QLineEdit(str(Path.home() / f"llamadesk-cluster-{name}"))
        self.folder.setAccessibleName("Job folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.folder, 1)
        row_layout.addWidget(browse)
        add_row(form, "Nodes", self.nodes)
        add_row(form, "GPUs per node", self.gpus)
        add_row(form, "SkyPilot GPU type", self.accelerator)
        add_row(form, "Job folder", row)
        row.setAccessibleName("Job folder")
        layout.addLayout(form)
        self.batch = plain_label()
        self.batch.setObjectName("pagePurpose")
        layout.addWidget(self.batch)
        self.report = QPlainTextEdit(readOnly=True)
        self.report.setAccessibleName("Cluster job report")
        self.report.setPlaceholderText("How to start the job appears here once the folder is written.")
        layout.addWidget(self.report, 1)
        buttons = QHBoxLayout()
        self.write_button = QPushButton("Write the job folder")
        self.write_button.setDefault(True)
        self.write_button.clicked.connect(self.write)
        self.open_button = QPushButton("Open the folder")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._on_open_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addStretch(1)
        for button in (self.write_button, self.open_button, close):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        for box in (self.nodes, self.gpus):
            box.valueChanged.connect(self._show_batch)
        self._show_batch()
        self.resize(640, 480)

    def _show_batch(self) -> None:
        t, ranks = self.config.train, self.nodes.value() * self.gpus.value()
        self.batch.setText(f"{ranks} GPUs in all, one process each: effective batch {t.micro_batch} × {t.grad_accum} "
                           f"× {ranks} = {t.micro_batch * t.grad_accum * ranks:,} sequences per step.")

    def _on_open_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.result["folder"]))

    def _browse(self) -> None:
        chosen = file_dialogs.choose_folder(self, "Where to write the job folder", str(Path.home()))
        if chosen:
            self.folder.setText(str(Path(chosen) / Path(self.folder.text()).name))

    def write(self) -> None:
        if self._process is not None:
            return
        settings = Path(tempfile.mkstemp(prefix="cluster-", suffix=".yaml", dir=paths.cache_dir("gui"))[1])
        run_config.save(self.config, settings)
        self.result = None
        self.report.setPlainText("Writing the job folder…")
        self.write_button.setEnabled(False)
        process = LineProcess(self)
        process.sig_stderr_line.connect(self.report.appendPlainText)
        process.sig_stdout_line.connect(self._on_line)
        process.sig_exited.connect(self._on_exited)
        self._process = process
        process.start(self._command + ["cluster", str(settings), "--out", self.folder.text().strip(), "--nodes",
                                       str(self.nodes.value()), "--gpus-per-node", str(self.gpus.value()),
                                       "--accelerator", self.accelerator.text().strip() or "A100", "--json"],
                      env=engine_environment(self._home))

    def _on_line(self, line: str) -> None:
        data = json_object(line)
        if data is None:
            return
        if "error" in data:
            self.report.setPlainText("Not written: " + error_text(data["error"]))
        elif "folder" in data:
            self.result = data
            commands = data["commands"]
            self.report.setPlainText(
                f"Written: {data['folder']}\nRun folder: {data['run']}/ ({data['nodes']} node(s) × "
                f"{data['gpus_per_node']} GPU(s))\n\nSlurm:\n  {commands['slurm']}\nSkyPilot:\n  "
                f"{commands['skypilot']}\ntorchrun by hand:\n  {commands['torchrun']}\n\nREADME.txt in the folder "
                "says the rest. Training on a cluster is not verified by LlamaDesk's own tests beyond two processes "
                "on one machine.")

    def _on_exited(self, end: Exit) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.write_button.setEnabled(True)
        self.open_button.setEnabled(self.result is not None)
        if end.not_started:
            self.report.setPlainText(f"Not written: could not start the engine: {end.not_started}")
        elif self.result is None and not self.report.toPlainText().startswith("Not written"):
            tail = (end.stderr_tail or "").strip().splitlines()[-1:]
            self.report.appendPlainText("Not written: " + (tail[0] if tail else f"the engine ended ({end.exit_code})"))


def _spin(low: int, high: int, value: int, name: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setAccessibleName(name)
    return box
