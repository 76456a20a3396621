"""Reading dataset files into rows, each remembering where it came from (row number, and line where known).

CSV, TSV, Parquet, plain text, ``save_to_disk`` folders and hub datasets are read with the ``datasets`` library.
JSON and JSONL are parsed here with the standard library because the Arrow-based JSON reader rejects a whole file
over one malformed line or one value of another type, and the user needs to be told which line is wrong instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.heavy.data.problems import ERROR, Problem, Report
from engine.light import json_words
from engine.light.errors import DatasetError

FILE_TYPES = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".txt": "txt",
}


UNPARSEABLE = object()  # the value of a row whose line could not be parsed (already reported)

# A CSV cell may hold a long document; the csv module's default limit (128 KiB) would reject it.
csv.field_size_limit(2**31 - 1)


@dataclass
class RawRow:
    row: int  # 1-based record number
    value: Any  # normally a dict of fields
    line: int | None = None


@dataclass
class RawTable:
    source: str
    file_type: str
    rows: list[RawRow]


def read_source(source: str, report: Report, *, text_sample_by: str = "paragraph") -> RawTable:
    """Read a file, a ``save_to_disk`` folder or a hub dataset id. Unparseable rows are added to ``report``."""
    path = Path(source).expanduser()
    if path.is_dir():
        return RawTable(str(path), "disk", _read_disk(path))
    if path.is_file():
        file_type = FILE_TYPES.get(path.suffix.lower())
        if file_type is None:
            raise DatasetError(
                f"unsupported file type '{path.suffix or '(none)'}'",
                where=str(path),
                hint="use .json, .jsonl, .csv, .tsv, .parquet or .txt (raw text)",
            )
        if path.stat().st_size == 0:
            raise DatasetError("the file is empty", where=str(path), hint="choose a file that contains examples")
        reader = {
            "json": _read_json,
            "jsonl": _read_jsonl,
            "csv": lambda p, r: _read_delimited(p, ","),
            "tsv": lambda p, r: _read_delimited(p, "\t"),
            "parquet": lambda p, r: _read_with_datasets(p, "parquet", {}),
            "txt": lambda p, r: _read_with_datasets(p, "text", {"sample_by": text_sample_by}),
        }[file_type]
        return RawTable(str(path), file_type, reader(path, report))
    if looks_like_hub_id(source):
        return RawTable(source, "hub", _read_hub(source))
    raise missing_source(source)


def missing_source(source: str) -> DatasetError:
    return DatasetError("no such file or folder", where=source, hint="check the path, or give a Hugging Face dataset id")


def require_source(source: str) -> None:
    """Fail fast, before a tokenizer is loaded, when a local source does not exist."""
    if not Path(source).expanduser().exists() and not looks_like_hub_id(source):
        raise missing_source(source)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        # utf-8-sig drops a byte-order mark that editors on Windows like to add.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})",
            where=str(path),
            hint="save the file as UTF-8 (most editors offer this under 'Save as… / Encoding')",
        ) from None


def _read_json(path: Path, report: Report) -> list[RawRow]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _is_json_lines(text):
            return _parse_json_lines(text, report)
        raise DatasetError(
            f"not valid JSON at line {exc.lineno}, column {exc.colno}: {json_words.in_words(exc)}",
            where=str(path),
            hint="fix the file, or if it has one JSON object per line, name it .jsonl",
        ) from None
    except RecursionError:
        raise DatasetError("the JSON is nested too deeply to read", where=str(path)) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise DatasetError(f"the JSON cannot be read: {exc}", where=str(path),
                           hint="fix the value the message names") from None
    records = _records_of(data, path)
    return [RawRow(i, value) for i, value in enumerate(records, start=1)]


def _records_of(data: Any, path: Path) -> list:
    """A JSON file holds an array of records, or an object holding one such array (e.g. {"data": [...]})."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        arrays = {k: v for k, v in data.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        if len(arrays) == 1:
            return next(iter(arrays.values()))
        if len(arrays) > 1:
            raise DatasetError(
                f"the JSON object holds several arrays of records ({', '.join(sorted(arrays))})",
                where=str(path),
                hint="keep only the array to train on, or save each as its own file",
            )
        return [data]  # a single record
    raise DatasetError(
        f"expected an array of records, found a JSON {type(data).__name__}",
        where=str(path),
        hint="the file should look like [{...}, {...}]",
    )


def _is_json_lines(text: str) -> bool:
    lines = [ln for ln in text.splitlines()[:5] if ln.strip()]
    return len(lines) > 1 and all(ln.lstrip().startswith("{") for ln in lines)


def _read_jsonl(path: Path, report: Report) -> list[RawRow]:
    return _parse_json_lines(_read_text(path), report)


def _parse_json_lines(text: str, report: Report) -> list[RawRow]:
    rows: list[RawRow] = []
    row = 0
    # Split on "\n" only: str.splitlines() would also split at U+2028/U+0085, which JSON strings may hold unescaped.
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        row += 1
        try:
            rows.append(RawRow(row, json.loads(line), line=line_no))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so is a 5000-digit integer
            detail = json_words.in_words(exc) if isinstance(exc, json.JSONDecodeError) else (
                "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120])
            report.add(Problem(row, "", "malformed_json", f"not valid JSON ({detail})", ERROR, line=line_no))
            rows.append(RawRow(row, UNPARSEABLE, line=line_no))
    return rows


def _read_delimited(path: Path, delimiter: str) -> list[RawRow]:
    """CSV/TSV cells are text: no type guessing ("007" stays "007") and no NA words ("None" stays "None")."""
    import datasets

    try:
        header = next(csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter), [])
    except csv.Error as exc:
        raise DatasetError(f"could not read the header row: {exc}", where=str(path),
                           hint="save the file as CSV/TSV with standard line endings and quoting") from None
    features = datasets.Features({name: datasets.Value("string") for name in header})
    rows = _read_with_datasets(path, "csv", {"sep": delimiter, "features": features, "keep_default_na": False,
                                             "na_filter": False})
    for row, line in zip(rows, _record_lines(path, delimiter)):
        row.line = line
    return rows


def _record_lines(path: Path, delimiter: str) -> list[int]:
    """The file line each data record starts on (a quoted cell may span several lines)."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
    starts, previous_end = [], 0
    try:
        for record in reader:
            if record and previous_end:  # skip the header, and blank lines the parser yields as []
                starts.append(previous_end + 1)
            previous_end = reader.line_num
    except csv.Error:
        return []  # rows keep their numbers; only the line numbers are unknown
    return starts


def _read_with_datasets(path: Path, builder: str, options: dict) -> list[RawRow]:
    import datasets

    quiet_datasets()
    try:
        table = datasets.load_dataset(
            builder, data_files=str(path), split="train", cache_dir=str(_datasets_cache()), **options
        )
    except Exception as exc:  # datasets wraps parser errors in many types; the message is what matters
        cause = exc.__cause__ or exc
        raise DatasetError(
            f"could not read the file as {builder.upper()}: {str(cause).splitlines()[0][:300]}",
            where=str(path),
            hint="check that the file is a valid, UTF-8 encoded file of that type",
        ) from None
    records = table
    if builder == "text":  # a paragraph of only blank space is a separator, not an example
        records = [r for r in table if r["text"].strip()]
    return [RawRow(i, record) for i, record in enumerate(records, start=1)]


def _read_disk(path: Path) -> list[RawRow]:
    import datasets

    quiet_datasets()
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise DatasetError(
            f"not a dataset folder written by datasets.save_to_disk ({exc})",
            where=str(path),
            hint="choose a data file, or a folder written by Dataset.save_to_disk",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    return [RawRow(i, record) for i, record in enumerate(loaded, start=1)]


def _read_hub(dataset_id: str) -> list[RawRow]:
    import datasets

    quiet_datasets()
    try:
        loaded = datasets.load_dataset(dataset_id, split="train", cache_dir=str(_datasets_cache()))
    except Exception as exc:
        raise DatasetError(
            f"could not load the Hugging Face dataset: {str(exc).splitlines()[0][:300]}",
            where=dataset_id,
            hint="check the id and your internet connection, or download the data and open the file",
        ) from None
    return [RawRow(i, record) for i, record in enumerate(loaded, start=1)]


def looks_like_hub_id(source: str) -> bool:
    if Path(source).suffix.lower() in FILE_TYPES:  # a data file name: a missing file, not a hub dataset
        return False
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and os.sep not in source.replace("/", "")


def _datasets_cache() -> Path:
    from engine.light import paths

    return paths.cache_dir("datasets")


def quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
