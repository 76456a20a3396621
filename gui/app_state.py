"""What the pages share: the user's current choices (which model, which dataset, which training settings) and the
one GPU monitor."""

from __future__ import annotations

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

    def set_config(self, config: RunConfig, origin: object = None) -> None:
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
