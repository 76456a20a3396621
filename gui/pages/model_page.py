"""Model page: the LLaMA catalog with a memory figure and fit badge per size, the demo model, a local folder or a
Hugging Face id, downloads with progress and cancel, and the Hugging Face token (kept in the OS keyring)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.light import catalog, estimator, gpu, hf_token, units
from engine.light.errors import ModelSourceError
from engine.light.model_folder import inspect_folder
from engine.light.units import gib
from gui.app_state import AppState
from gui.engine_client import EngineClient
from gui.widgets import memory_panel
from gui.widgets.dialogs import warn
from gui.widgets.labels import plain_label
from gui.widgets.row_table import RowTable

COLUMNS = ("Model", "Parameters", "Context", "License", "Gated", "Download", "Est. memory", "Fit")
DEMO = ("demo", "SmolLM2-135M-Instruct (offline demo)")


def fit_badge(need: int, free: int | None) -> str:
    return "no GPU" if free is None else estimator.verdict(need, free).status


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
        self.current = plain_label()
        self.progress = plain_label()
        layout = QVBoxLayout(self)
        layout.addWidget(self.gpu)
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
        self.refresh()

    def _on_model_changed(self, _reference: str) -> None:
        self._show_current()

    def _on_config_changed(self, _config, _origin) -> None:
        self.refresh()

    def _on_gpu_probe(self, probe: gpu.Probe) -> None:
        reading = gpu.training_gpu(probe) if probe.available and probe.gpus else None
        self.gpu.setText(f"{reading.name}: {gib(reading.free_bytes)} free of {gib(reading.total_bytes)}" if reading
                         else "No NVIDIA GPU found — the demo model can train on the CPU, slowly.")
        if memory_panel.changed(self._reading, probe):
            self._reading = probe
            self._free = reading.free_bytes if reading else None
            self.refresh()

    def refresh(self) -> None:
        """The estimate and fit badge of every catalog model for the current settings."""
        free = self._free
        self.table.set_row(0, (DEMO[1], "135M", "8,192", "apache-2.0", "no", "93 MB (once)", "", "CPU ok"))
        config = self.state.config
        self.table.horizontalHeaderItem(6).setToolTip(
            f"GPU memory for the current training settings ({config.quantization}, micro-batch "
            f"{config.train.micro_batch} × {config.data.cutoff} tokens, LoRA rank {config.lora.rank}); "
            "the Train page shows the breakdown")
        for i, spec in enumerate(self.specs, start=1):
            need = estimator.estimate(spec, config).total
            self.table.set_row(i, (spec.name, units.human_count(spec.param_count), f"{spec.max_position_embeddings:,}",
                          spec.license, "yes" if spec.gated else "no", units.human_bytes(spec.download_bytes),
                          gib(need), fit_badge(need, free)))
        self._show_current()

    def selected_reference(self) -> str | None:
        index = self.table.selected_row()
        if index is None:
            return None
        return DEMO[0] if index == 0 else self.specs[index - 1].key

    def _on_table_selection(self) -> None:
        reference = self.selected_reference()
        if reference:
            self.state.set_model(reference)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
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

    def _on_download_stderr(self, line: str) -> None:
        if line.strip():
            self.progress.setText(line.strip()[-300:])

    def _on_download_exited(self, outcome) -> None:
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
        self.current.setText(f"Chosen model: {self.state.config.model}")
