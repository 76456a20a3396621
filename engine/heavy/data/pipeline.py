"""From a dataset source to tokenized train/validation splits, with the report, statistics and preview.

read → detect → normalise and validate → drop duplicates → render with the chat template → tokenize → split → pack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.heavy.data import cache, formats, preview, readers, stats, templates, tokenize
from engine.heavy.data.problems import ERROR, WARNING, Problem, Report
from engine.light import schema
from engine.light.config import DataSettings
from engine.light.errors import DatasetError

PREVIEW_STORED = 20  # rendered examples kept with a cached result; a caller shows as many as it asks for


@dataclass
class PreparedData:
    source: str
    file_type: str
    detection: formats.Detection
    template: str  # "model" or "default"
    report: Report
    stats: stats.TokenStats
    preview: list[preview.PreviewExample]
    cache_key: str
    cache_hit: bool
    folder: Path  # the cache folder holding train/ and validation/ (datasets.save_to_disk)

    @property
    def usable(self) -> bool:
        return self.report.rows_usable > 0

    def require_usable(self) -> None:
        if not self.usable:
            raise DatasetError(
                f"no usable rows ({self.report.summary()})",
                where=self.source,
                hint="fix the problems listed in the report, or choose the right format and columns",
            )

    def splits(self):
        """The tokenized splits as ``datasets.Dataset`` objects: (train, validation or None)."""
        import datasets

        train = datasets.load_from_disk(str(self.folder / "train"))
        val_path = self.folder / "validation"
        return train, (datasets.load_from_disk(str(val_path)) if val_path.exists() else None)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "file_type": self.file_type,
            "detection": self.detection.to_dict(),
            "template": self.template,
            "report": self.report.to_dict(),
            "stats": self.stats.to_dict(),
            "preview": [p.to_dict() for p in self.preview],
            "cache_key": self.cache_key,
            "cache_hit": self.cache_hit,
        }


def prepare(source: str | Path, tokenizer, settings: DataSettings | None = None, *, preview_rows: int = 3,
            use_cache: bool = True) -> PreparedData:
    """Run the whole pipeline, or load its result from the cache when source, tokenizer and settings are unchanged."""
    from engine.light import paths

    settings = settings or DataSettings()
    invalid = schema.bound_problems(settings)
    if invalid:
        raise DatasetError("; ".join(invalid), hint="fix the dataset settings")
    source = str(source)
    template = templates.ensure_chat_template(tokenizer)
    root = paths.cache_dir("tokenized")
    # The key holds what changes the tokenized result, not how much of the preview a caller shows: a check on the
    # Dataset page and a training run with the same settings share one cache entry.
    cache_key = cache.key(source, cache.source_fingerprint(source), cache.tokenizer_fingerprint(tokenizer),
                          asdict(settings))
    hit = cache.lookup(root, cache_key) if use_cache else None
    try:
        prepared = _load(hit, cache_key) if hit is not None else _prepare(source, tokenizer, settings, root,
                                                                          cache_key, template)
    except DatasetError as exc:
        exc.where = exc.where or source  # every message names the file
        raise
    prepared.preview = prepared.preview[:preview_rows]
    return prepared


def _prepare(source: str, tokenizer, settings: DataSettings, root: Path, cache_key: str,
             template: str) -> PreparedData:
    report = Report()
    table = readers.read_source(source, report)
    report.lines = {raw.row: raw.line for raw in table.rows if raw.line is not None}
    if table.rows and all(raw.value is readers.UNPARSEABLE for raw in table.rows):
        first = report.problems[0]
        raise DatasetError(f"no line could be read as JSON ({first.location()}: {first.message})",
                           where=source, hint="each line must be one JSON object, e.g. {\"instruction\": \"…\", "
                           "\"output\": \"…\"} with double quotes")
    detection = formats.detect(table.rows, table.file_type, forced=settings.format or None, mapping=settings.columns)
    examples = formats.normalize(table.rows, detection, report)
    examples = _deduplicate(examples, report, drop=settings.drop_duplicates)
    rendered = templates.render_all(examples, tokenizer, report, train_on=settings.train_on)
    items = tokenize.tokenize_all(rendered, tokenizer, cutoff=settings.cutoff,
                                  chunk_text=detection.format == formats.TEXT, report=report)
    report.rows_usable = len({item.row for item in items})
    train, validation = tokenize.split(items, settings.validation_share, settings.seed)
    train_columns = _columns(train, settings)
    val_columns = _columns(validation, settings, prompts=True) if validation else None
    token_stats = stats.compute(items, cutoff=settings.cutoff, sequences=len(train_columns["input_ids"]))
    prepared = PreparedData(source, table.file_type, detection, template, report, token_stats,
                            preview.build(items, PREVIEW_STORED), cache_key, False, root / cache_key)

    def write(folder: Path) -> None:
        import datasets

        datasets.Dataset.from_dict(train_columns).save_to_disk(str(folder / "train"))
        if val_columns:
            datasets.Dataset.from_dict(val_columns).save_to_disk(str(folder / "validation"))
        (folder / "summary.json").write_text(json.dumps(prepared.to_dict(), ensure_ascii=False), encoding="utf-8")

    readers.quiet_datasets()
    cache.store(root, cache_key, write)
    return prepared


def _columns(items: list[tokenize.Tokenized], settings: DataSettings, *, prompts: bool = False) -> dict:
    """The split's columns; with ``prompts`` (the validation split) also each sequence's prompts as messages."""
    if settings.packing:
        packed = tokenize.pack(items, settings.cutoff)
        columns = {k: [p[k] for p in packed] for k in ("input_ids", "labels", "position_ids")}
        groups = [p["prompts"] for p in packed]
    else:
        columns = tokenize.as_columns(items)
        groups = [[item.prompt] for item in items]
    if prompts:
        columns[tokenize.PROMPTS] = [json.dumps(group, ensure_ascii=False) for group in groups]
    return columns


def _deduplicate(examples: list[formats.Example], report: Report, *, drop: bool) -> list[formats.Example]:
    first_row: dict[str, int] = {}
    kept = []
    for example in examples:
        k = example.key()
        if k in first_row:
            action = "left out" if drop else "kept"
            report.add(Problem(example.row, "", "duplicate", f"exact duplicate of row {first_row[k]} ({action})",
                               ERROR if drop else WARNING))
            if drop:
                continue
        else:
            first_row[k] = example.row
        kept.append(example)
    return kept


def _load(folder: Path, cache_key: str) -> PreparedData:
    data: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return PreparedData(
        source=data["source"],
        file_type=data["file_type"],
        detection=formats.Detection(**data["detection"]),
        template=data["template"],
        report=Report.from_dict(data["report"]),
        stats=stats.TokenStats(**data["stats"]),
        preview=[preview.PreviewExample(p["row"], p["tokens"], p["truncated"],
                                        [tuple(s) for s in p["segments"]]) for p in data["preview"]],
        cache_key=cache_key,
        cache_hit=True,
        folder=folder,
    )
