"""The Export dialog: a finished run to a merged model, GGUF, Ollama or its adapter, with the disk space it needs and
what is in the chosen folder (a folder of someone else's files is refused), the engine's progress, a cancel, and the
verification report at the end (``ExportJob`` runs the engine)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.light import disk, export_report, fit, protocol
from engine.light.errors import ModelSourceError, UserError
from engine.light.export_options import (
    FORMATS,
    MERGE_INTO,
    QUANTS,
    ExportOptions,
    earlier_export,
    holds_our_export,
    needed_bytes,
    target_refusal,
)
from engine.light.run_folder import RunSummary
from engine.light.units import format_duration
from gui import export_words, theme
from gui.export_job import ExportJob
from gui.widgets import file_dialogs
from gui.widgets.dialogs import ask
from gui.widgets.labels import add_row, plain_label

# The engine's stage names as verbs; its detail completes the sentence ("Converting to GGUF Q4_K_M").
STAGES = {"checking": "Checking", "reference": "Recording", "merging": "Merging", "saving": "Saving",
          "verifying": "Verifying", "converting": "Converting", "writing": "Writing", "publishing": "Finishing"}


class ExportDialog(QDialog):
    def __init__(self, run: RunSummary, *, home: str | None = None, engine_command: list[str] | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.run, self._home = run, home
        self.setWindowTitle(f"Export {run.name}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.job = ExportJob(self, command=engine_command)
        self.job.sig_progress.connect(self._on_progress)
        self.job.sig_finished.connect(self._on_finished)
        self.job.sig_failed.connect(self._on_failed)
        self.job.sig_cancelled.connect(self._on_cancelled)
        self.job.sig_ended.connect(self._on_ended)
        self._quantized = run.config.get("quantization") == "nf4"
        self._parameters = _parameters(run.model)
        self._stages_seen: list[str] = []
        self._started: ExportOptions | None = None
        self._result: protocol.ExportFinished | None = None
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_form())
        layout.addWidget(self._build_progress())
        self.report = QPlainTextEdit(readOnly=True)
        self.report.setAccessibleName("Export report")
        self.report.setPlaceholderText("The verification report appears here when the export is done.")
        layout.addWidget(self.report, 1)
        layout.addLayout(self._build_buttons())
        self.resize(760, 560)
        self._on_choice_changed()

    # ---- layout ------------------------------------------------------------------------------------------------
    def _build_form(self) -> QFormLayout:
        form = QFormLayout()
        self.format_combo = _combo(FORMATS, "Export as")
        self.quant_combo = _combo(QUANTS, "Quantization")
        self.merge_combo = _combo(MERGE_INTO, "Merge into")
        self.merge_combo.setToolTip("A 4-bit (QLoRA) run's adapter learned to work with the 4-bit rounding of the "
                                    "base; merging into those weights answers exactly as in training and chat.")
        self.system_edit = QLineEdit()
        self.system_edit.setPlaceholderText("Optional: the Modelfile's SYSTEM prompt")
        self.system_edit.setAccessibleName("System prompt")
        self.folder_edit = QLineEdit()
        self.folder_edit.setAccessibleName("Export folder")
        self.folder_edit.textEdited.connect(self._on_folder_edited)
        self._folder_edited = False
        choose = self.choose_button = QPushButton("Choose…")
        choose.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(choose)
        self.disk_label = plain_label()
        defaults = ExportOptions()
        for combo, value in ((self.format_combo, defaults.format), (self.quant_combo, defaults.quant),
                             (self.merge_combo, defaults.merge_into)):
            combo.setCurrentIndex(combo.findData(value))
            combo.currentIndexChanged.connect(self._on_choice_changed)
        add_row(form, "Export as", self.format_combo)
        add_row(form, "Quantization", self.quant_combo)
        add_row(form, "Merge into", self.merge_combo)
        add_row(form, "System prompt", self.system_edit)
        folder_widget = QWidget()
        folder_widget.setLayout(folder_row)
        folder_row.setContentsMargins(0, 0, 0, 0)
        add_row(form, "Folder", folder_widget)
        form.addRow(self.disk_label)
        self.form = form
        return form

    def _build_progress(self) -> QWidget:
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        self.status_label = plain_label(selectable=True)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Export progress")
        self.progress.hide()
        column.addWidget(self.progress)
        column.addWidget(self.status_label)
        return box

    def _build_buttons(self) -> QHBoxLayout:
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel export")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self._open_folder)
        self.open_button.hide()
        self.copy_button = QPushButton("Copy run command")
        self.copy_button.clicked.connect(self._copy_command)
        self.copy_button.hide()
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        for button in (self.open_button, self.copy_button):
            row.addWidget(button)
        row.addStretch(1)
        for button in (self.export_button, self.cancel_button, close):
            row.addWidget(button)
        return row

    # ---- choices -------------------------------------------------------------------------------------------------
    def options(self) -> ExportOptions:
        fmt = self.format_combo.currentData()
        return ExportOptions(fmt, self.quant_combo.currentData(), self.merge_combo.currentData(),
                             self.system_edit.text().strip() if fmt == "ollama" else "",
                             Path(self.folder_edit.text().strip()).expanduser() if self.folder_edit.text().strip()
                             else None)

    def _on_cancelled(self) -> None:
        self._set_status("Cancelled: nothing was written.")

    def _on_folder_edited(self, _text: str) -> None:
        self._update_disk()
        self._folder_edited = True

    def _on_choice_changed(self, *_) -> None:
        fmt = self.format_combo.currentData()
        makes_gguf = fmt in ("gguf", "ollama")
        self._show_row(self.quant_combo, makes_gguf)
        self._show_row(self.merge_combo, self._quantized and fmt != "adapter")
        self._show_row(self.system_edit, fmt == "ollama")
        if not self._folder_edited:  # follow the choices until the user types a folder of their own
            self.folder_edit.setText(str(ExportOptions(fmt, self.quant_combo.currentData()).folder_for(self.run.name)))
        self._update_disk()

    def _show_row(self, field: QWidget, visible: bool) -> None:
        self.form.setRowVisible(field, visible)

    def _choose_folder(self) -> None:
        start = str(Path(self.folder_edit.text()).parent)
        chosen = file_dialogs.choose_folder(self, "Export into", start)
        if chosen:
            self.folder_edit.setText(str(Path(chosen) / Path(self.folder_edit.text()).name))
            self._folder_edited = True
            self._update_disk()

    def _update_disk(self) -> None:
        options = self.options()
        if options.out is None:
            self.disk_label.setText("Choose a folder for the export.")
            self.export_button.setEnabled(False)
            return
        refusal = target_refusal(options.out, options.default_name(self.run.name))
        if refusal is not None:
            self.disk_label.setText(_refusal_text(refusal))
            self.disk_label.setStyleSheet(_error_style())
            self.export_button.setEnabled(False)
            return
        adapter = sum(p.stat().st_size for p in self.run.folder.adapter_dir.rglob("*") if p.is_file())
        need = needed_bytes(self._parameters or 0, options, adapter)
        free = disk.free_bytes(options.out.parent)
        known = "" if self._parameters or options.format == "adapter" else " (the base model's size is unknown here)"
        self.disk_label.setText(f"Needs about {disk.size(need)} while it runs{known}; {disk.size(free)} is free "
                                f"there.{self._earlier_text(options.out)}")
        short = free < need
        self.disk_label.setStyleSheet(_error_style() if short else "")
        self.export_button.setEnabled(not short and not self.job.is_running())

    def _earlier_text(self, out: Path) -> str:
        """What is in the folder already: the export just made there, or an earlier one."""
        done = self._result
        if done is not None and done.passed and Path(done.folder) == out and earlier_export(out) == out:
            return " The export you just made is there: exporting again replaces it only once the new one is verified."
        return _earlier_text(out)

    # ---- running -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        options = self.options()
        if options.out is None or self.job.is_running():
            return
        self._stages_seen = []
        self._started = options
        self.report.clear()
        self._result = None
        for widget in (self.open_button, self.copy_button):
            widget.hide()
        self._set_running(True)
        self._set_status("Starting the engine…")
        self.job.start(str(self.run.folder.path), options, home=self._home)

    def cancel(self) -> None:
        if self.job.is_running():
            self._set_status("Cancelling: the engine is removing what it wrote…")
            self.cancel_button.setEnabled(False)
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        for widget in (self.format_combo, self.quant_combo, self.merge_combo, self.system_edit, self.folder_edit,
                       self.choose_button):
            widget.setEnabled(not running)
        self.export_button.setVisible(not running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, 0)  # busy until a stage reports its size

    def _on_progress(self, msg: protocol.ExportProgress) -> None:
        if msg.stage not in self._stages_seen:
            self._stages_seen.append(msg.stage)
        text = STAGES.get(msg.stage, msg.stage.capitalize())
        if msg.detail:
            text += f" {msg.detail}"
        if msg.total:
            self.progress.setRange(0, msg.total)
            self.progress.setValue(msg.done)
            text += f" — {msg.done} of {msg.total} tensors"
            if msg.eta_s is not None:
                text += f", about {format_duration(msg.eta_s)} left"
        else:
            self.progress.setRange(0, 0)
        self._set_status(text)

    def _on_finished(self, msg: protocol.ExportFinished) -> None:
        self._result = msg
        self.report.setPlainText(export_words.report(msg))
        self._set_status("Done and verified: it answers like the fine-tune." if msg.passed else
                         export_report.outcome(msg) + " The report below shows how its answers differ.")
        self.status_label.setStyleSheet("" if msg.passed else _error_style())
        self.open_button.show()
        self.copy_button.setVisible(msg.passed and msg.format != "adapter")

    def _on_failed(self, text: str) -> None:
        out = self._started.out if self._started is not None else None
        unchanged = f"\nYour earlier export at {out} is unchanged." if out and holds_our_export(out) else ""
        self._set_status(f"The export failed: {text}{unchanged}")
        self.status_label.setStyleSheet(_error_style())

    def _on_ended(self) -> None:
        self._set_running(False)
        self._update_disk()

    def _set_status(self, text: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)

    def _open_folder(self) -> None:
        if self._result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self._result.folder))

    def _copy_command(self) -> None:
        if self._result is not None:
            QGuiApplication.clipboard().setText(export_report.how_to_run(self._result)[0])

    # ---- Qt hooks ----------------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self.job.is_running():
            if not ask(self, "Export running", "Cancel the export? Nothing of it will be kept."):
                event.ignore()
                return
            self.job.cancel()
            self.job.wait(ExportJob.CANCEL_GRACE_MS + 5000)
        super().closeEvent(event)


def _error_style() -> str:
    return f"color: {theme.colors().error};"  # the theme's error colour reads on both palettes


def _refusal_text(refusal: UserError) -> str:
    """'<folder>: <what>.' and what to do, as a sentence of its own."""
    return f"{refusal.where}: {refusal.message}.\n{refusal.hint[:1].upper()}{refusal.hint[1:]}."


def _earlier_text(out: Path) -> str:
    earlier = earlier_export(out)
    if earlier is None:
        return ""
    if earlier == out:
        return " An earlier export is there: the new one replaces it only once it is verified."
    return (f" The earlier export was set aside as {earlier.name} by an export that was interrupted: the next export "
            "puts it back first, and replaces it only once the new one is verified.")


def _combo(choices: dict[str, str], name: str) -> QComboBox:
    combo = QComboBox()
    combo.setAccessibleName(name)
    for key, label in choices.items():
        combo.addItem(label[:1].upper() + label[1:], key)
    return combo


def _parameters(model: str) -> int | None:
    """The base model's parameter count, to size the export (None when it cannot be known without the model)."""
    try:
        return fit.spec_for(model).param_count
    except (ModelSourceError, OSError, ValueError):
        return None
