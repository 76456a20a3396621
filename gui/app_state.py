"""What the pages share: the user's current choices (which model, which dataset, which training settings) and the
one GPU monitor."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QObject, Signal

from engine.light.config import RunConfig
from gui.gpu_monitor import GpuMonitor


class AppState(QObject):
    """Signals: sig_model_changed(str), sig_dataset_changed(str), sig_config_changed(RunConfig, origin) where origin
    is the object that made the change (a form does not reload what it sent), sig_runs_changed() when a run starts,
    ends or is deleted, sig_data_lengths_changed() when a dataset check has measured its rows."""

    sig_model_changed = Signal(str)
    sig_dataset_changed = Signal(str)
    sig_config_changed = Signal(object, object)
    sig_runs_changed = Signal()
    sig_data_lengths_changed = Signal()

    def __init__(self, home: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.home = home  # passed to engine processes; None means the engine's default
        self.config = RunConfig()
        # Where the training settings came from ("the demo preset", "the file run.yaml", …) and what they were then,
        # so the Train page can say so, and whether the user changed them since.
        self.settings_source = "the defaults"
        self._source_config = self.config
        self.settings_restored = False  # the settings are the last session's
        self.gpu = GpuMonitor(self)
        self._longest: dict[tuple[str, str], int] = {}  # (dataset, model) → the longest row in tokens

    def set_longest_row(self, dataset: str, model: str, tokens: int) -> None:
        """What a dataset check measured: the dataset's longest row with this model's tokenizer and template."""
        self._longest[(dataset, model)] = tokens
        self.sig_data_lengths_changed.emit()

    def longest_row(self) -> int | None:
        """The current dataset's longest row in tokens, if a check has measured it for the current model."""
        return self._longest.get((self.config.dataset, self.config.model))

    def set_model(self, reference: str) -> None:
        self.update({"model": reference})

    def set_dataset(self, path: str) -> None:
        self.update({"dataset": path})

    def update(self, overrides: dict, origin: object = None) -> None:
        """Change some settings by their dotted paths."""
        self.set_config(self.config.with_values(overrides), origin)

    def set_config(self, config: RunConfig, origin: object = None, *, source: str | None = None,
                   source_config: RunConfig | None = None, restored: bool = False) -> None:
        """``source`` names where a whole new set of settings came from (a preset, a file, the last session);
        ``source_config`` is what that source said, when the settings given already differ from it."""
        if source is not None:
            self.settings_source, self._source_config = source, source_config or config
            self.settings_restored = restored
            if config == self.config:
                self.sig_config_changed.emit(config, origin)  # the same settings, from a source worth naming
                return
        if config == self.config:
            return
        model_changed = config.model != self.config.model
        dataset_changed = config.dataset != self.config.dataset
        self.config = config
        if model_changed:
            self.sig_model_changed.emit(config.model)
        if dataset_changed:
            self.sig_dataset_changed.emit(config.dataset)
        self.sig_config_changed.emit(config, origin)

    def settings_edited(self) -> bool:
        """Whether a training setting differs from what its source said (the model and the data are not counted)."""
        source = self._source_config
        comparable = dataclasses.replace(
            source, model=self.config.model, dataset=self.config.dataset,
            data=dataclasses.replace(source.data, format=self.config.data.format, columns=self.config.data.columns))
        return comparable != self.config

    def settings_provenance(self) -> str:
        """The Train page's line about the settings in use, e.g. "Settings: the demo preset, with your changes"."""
        text = f"Settings: {self.settings_source}"
        if self.settings_edited():
            text += ", with your changes"
        return text + (" (as you left them last time)" if self.settings_restored else "")

    def source_config(self) -> RunConfig:
        return self._source_config
