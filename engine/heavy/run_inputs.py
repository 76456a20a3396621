"""What a run trains on: the model folder (downloaded if need be) and the tokenized train and validation splits.

A single process fetches them itself (train.py); with several ranks the launcher (rank_launcher.py) fetches them once,
before it starts the ranks, which then find them in the model folder and the tokenized cache."""

from __future__ import annotations

from pathlib import Path

from engine.heavy.data import pipeline
from engine.heavy.events import Emitter
from engine.heavy.models.resolve import model_folder
from engine.heavy.train_failures import TrainingFailed
from engine.light import protocol
from engine.light.errors import DatasetError, ModelSourceError


def model_dir_for(config, emitter: Emitter) -> Path:
    emitter.emit(protocol.State("loading_model", config.model))
    try:
        return model_folder(config.model, progress=lambda m: emitter.emit(protocol.Log("info", m))).path
    except ModelSourceError as exc:
        raise TrainingFailed("model", str(exc.message), exc.hint) from None


def prepare_data(config, tokenizer, emitter: Emitter):
    """The tokenized train and validation splits (from the cache when a check or an earlier run made them)."""
    emitter.emit(protocol.State("preparing_data", config.dataset))
    try:
        prepared = pipeline.prepare(config.dataset, tokenizer, config.data, preview_rows=0)
        prepared.require_usable()
    except DatasetError as exc:
        raise TrainingFailed("dataset", f"{exc.where}: {exc.message}" if exc.where else exc.message,
                             exc.hint) from None
    report = prepared.report
    if report.rows_skipped:
        emitter.emit(protocol.Warning(f"{report.rows_skipped} of {report.rows_read} rows were skipped "
                                      f"({', '.join(f'{c} ×{n}' for c, n in sorted(report.counts.items()))})",
                                      "run 'llamadesk-engine data check' on the dataset to see each problem"))
    source = "from the cache" if prepared.cache_hit else "tokenized"
    emitter.emit(protocol.Log("info", f"data ({source}): {prepared.stats.summary()}"))
    return prepared.splits()
