"""Model page: the LLaMA catalog with a memory figure and fit badge per size, the demo model, a local folder or a
Hugging Face id, downloads with progress and cancel, and the Hugging Face token (kept in the OS keyring).

Each model is estimated as a new user would train it: the default settings, or where those do not fit the GPU, the
fit advice's change to them (fit.default_plan). The settings on the Train page are estimated there."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.light import catalog, fit, gpu, hf_token, units
from engine.light.errors import ModelSourceError
from engine.light.model_folder import inspect_folder
from engine.light.units import gib
from gui.app_state import AppState
from gui.engine_client import EngineClient
from gui.widgets import file_dialogs, memory_panel
from gui.widgets.dialogs import warn
from gui.widgets.labels import plain_label
from gui.widgets.row_table import RowTable

COLUMNS = ("Model", "Parameters", "Context", "License", "Gated", "Download", "GPU memory", "Fit")
DEMO = ("demo", "SmolLM2-135M-Instruct (offline demo)")


def fit_badge(plan: fit.Plan) -> str:
    """The verdict for the GPU, with the change that makes it so, if any."""
    if plan.status is None:
        return "no GPU"
    return f"{plan.status} with: {plan.change}" if plan.change else plan.status


class ModelPage(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self.state = state
        self.specs = catalog.load_catalog()
        self.download = EngineClient(self, command=engine_command)
        self.table = RowTable(COLUMNS, len(self.specs) + 1)
        self.table.setAccessibleName("Models")
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.hub_id = QLineEdit(placeholderText="Hugging Face id, e.g. meta-llama/Llama-3.2-1B-Instruct")
        self.hub_id.setAccessibleName("Hugging Face id")
        self.hub_id.returnPressed.connect(self._use_hub_id)
        buttons = QHBoxLayout()
        for name, handler in (("Local folder…", self._choose_folder), ("Use id", self._use_hub_id),
                              ("Download", self._start_download), ("Cancel download", self.download.kill),
                              ("Hugging Face token…", self._set_token)):
            button = QPushButton(name)
            button.clicked.connect(handler)
            buttons.addWidget(button)
            setattr(self, "button_" + name.split()[0].lower(), button)
        self.gpu = plain_label()
        self.basis = plain_label()
        self.current = plain_label()
        self.progress = plain_label()
        layout = QVBoxLayout(self)
        layout.addWidget(self.gpu)
        layout.addWidget(self.basis)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hub_id)
        layout.addLayout(buttons)
        layout.addWidget(self.current)
        layout.addWidget(self.progress)
        self.download.sig_stderr.connect(self._on_download_stderr)
        self.download.sig_exited.connect(self._on_download_exited)
        state.sig_model_changed.connect(self._on_model_changed)
        state.sig_config_changed.connect(self._on_config_changed)
        state.gpu.sig_probe.connect(self._on_gpu_probe)
        state.gpu.watch(self)
        self._reading: gpu.Probe | None = None  # the GPU reading the badges were made against
        self._free: int | None = None
        self.gpu.setText("Looking for an NVIDIA GPU…")
        self._update_buttons()
        self.refresh()

    def _on_model_changed(self, _reference: str) -> None:
        self._show_current()

    def _on_config_changed(self, _config, _origin) -> None:
        self._show_current()  # the estimates are for the default settings, not the Train page's

    def _on_gpu_probe(self, probe: gpu.Probe) -> None:
        reading = gpu.training_gpu(probe) if probe.available and probe.gpus else None
        self.gpu.setText(f"{reading.name}: {gib(reading.free_bytes)} free of {gib(reading.total_bytes)}" if reading
                         else "No NVIDIA GPU found — the demo model can train on the CPU, slowly.")
        if memory_panel.changed(self._reading, probe):
            self._reading = probe
            self._free = reading.free_bytes if reading else None
            self.refresh()

    def refresh(self) -> None:
        """The estimate and fit badge of every catalog model, trained as fit.default_plan would."""
        free = self._free
        demo = fit.spec_for(DEMO[0])
        self.table.set_row(0, (DEMO[1], "135M", "8,192", "apache-2.0", "no", f"{gib(demo.download_bytes, 2)} (once)",
                               "", "trains on the CPU too"))
        basis = fit.describe_defaults()
        where = ("where they do not fit this GPU, with the change the Fit column names"
                 if free is not None else "on a CUDA GPU")
        self.basis.setText(f"GPU memory is estimated with {basis}; {where}. The Train page estimates your own "
                           "settings.")
        self.table.horizontalHeaderItem(6).setToolTip(f"GPU memory to train the model with {basis}")
        for i, spec in enumerate(self.specs, start=1):
            plan = fit.default_plan(spec, free)
            self.table.set_row(i, (spec.name, units.human_count(spec.param_count), f"{spec.max_position_embeddings:,}",
                                   spec.license, "yes" if spec.gated else "no", gib(spec.download_bytes),
                                   gib(plan.need_bytes), fit_badge(plan)))
        self._show_current()

    def selected_reference(self) -> str | None:
        index = self.table.selected_row()
        if index is None:
            return None
        return DEMO[0] if index == 0 else self.specs[index - 1].key

    def _on_table_selection(self) -> None:
        reference = self.selected_reference()
        if reference and reference != self.state.config.model:
            self.state.set_model(reference)

    def _choose_folder(self) -> None:
        folder = file_dialogs.choose_folder(self, "Choose a model folder")
        if not folder:
            return
        try:
            info = inspect_folder(folder)
        except ModelSourceError as exc:
            warn(self, "This folder cannot be used", str(exc))
            return
        self.state.set_model(str(info.path))

    def _use_hub_id(self) -> None:
        text = self.hub_id.text().strip()
        if text.count("/") != 1 or " " in text:
            self.progress.setText("A Hugging Face id looks like owner/name, e.g. meta-llama/Llama-3.2-1B-Instruct.")
            return
        self.state.set_model(text)

    def _start_download(self) -> None:
        if self.download.is_running():
            return
        reference = self.state.config.model
        self.progress.setText(f"Fetching {reference}…")
        self.download.start(["model", "fetch", reference], home=self.state.home)
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Download while nothing downloads; Cancel download only while something does."""
        running = self.download.is_running()
        self.button_download.setEnabled(not running)
        self.button_cancel.setEnabled(running)

    def _on_download_stderr(self, line: str) -> None:
        if line.strip():
            self.progress.setText(line.strip()[-300:])

    def _on_download_exited(self, outcome) -> None:
        self._update_buttons()
        if outcome.exit_code == 0:
            self.progress.setText(f"{self.state.config.model} is ready.")
        elif outcome.exit_code is None:
            self.progress.setText("Download cancelled. Finished files are kept; it resumes next time.")
        else:
            self.progress.setText(outcome.stderr_tail.strip().splitlines()[-1] if outcome.stderr_tail.strip()
                                  else "The download failed.")

    def _set_token(self) -> None:
        token, ok = QInputDialog.getText(self, "Hugging Face token", "Access token (kept in your system keyring, "
                                         "never in a config or log):", QLineEdit.EchoMode.Password)
        if ok and token.strip():
            try:
                where = hf_token.set_token(token)
            except OSError as exc:
                self.progress.setText(f"Could not store the token ({exc.strerror}); set the HF_TOKEN environment "
                                      "variable instead.")
                return
            if where == "keyring":
                self.progress.setText("Token saved in the system keyring.")
            else:
                warn(self, "Hugging Face token", hf_token.fallback_warning(where))
                self.progress.setText(f"Token saved in {where} (owner-only file; no system keyring found).")

    def _show_current(self) -> None:
        """Name the chosen model, and select and embolden its row (none for a folder or a Hugging Face id)."""
        chosen = self.state.config.model
        self.current.setText(f"Chosen model: {chosen}")
        keys = [DEMO[0]] + [spec.key for spec in self.specs]
        row = keys.index(chosen) if chosen in keys else None
        for index in range(self.table.rowCount()):
            for column in range(self.table.columnCount()):
                item = self.table.item(index, column)
                if item is not None:
                    font = QFont(item.font())
                    font.setBold(index == row)
                    item.setFont(font)
        self.table.blockSignals(True)  # a selection made here is no choice of the user's
        if row is None:
            self.table.clearSelection()
        elif self.table.selected_row() != row:
            self.table.select_only(row)
        self.table.blockSignals(False)
