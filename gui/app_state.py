"""The user's current choices, shared by the pages: which model, which dataset, which training settings."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QObject, Signal

from engine.config import RunConfig


class AppState(QObject):
    """Signals: sig_model_changed(str), sig_dataset_changed(str), sig_config_changed(object: RunConfig),
    sig_runs_changed() when a run starts, ends or is deleted."""

    sig_model_changed = Signal(str)
    sig_dataset_changed = Signal(str)
    sig_config_changed = Signal(object)
    sig_runs_changed = Signal()

    def __init__(self, home: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.home = home  # passed to engine processes; None means the engine's default
        self.config = RunConfig()

    def set_model(self, reference: str) -> None:
        if reference != self.config.model:
            self.config = dataclasses.replace(self.config, model=reference)
            self.sig_model_changed.emit(reference)
            self.sig_config_changed.emit(self.config)

    def set_dataset(self, path: str) -> None:
        if path != self.config.dataset:
            self.config = dataclasses.replace(self.config, dataset=path)
            self.sig_dataset_changed.emit(path)
            self.sig_config_changed.emit(self.config)

    def set_config(self, config: RunConfig) -> None:
        model_changed = config.model != self.config.model
        dataset_changed = config.dataset != self.config.dataset
        self.config = config
        if model_changed:
            self.sig_model_changed.emit(config.model)
        if dataset_changed:
            self.sig_dataset_changed.emit(config.dataset)
        self.sig_config_changed.emit(config)
