"""A fast stand-in for ``engine data check --json``, for GUI tests: the answer is computed from the real file.

Usage: python tests/fake_data_check.py [--delay S] [--crash] data check SOURCE --json [the engine's data options]
Rows are alpaca records (a .json array, JSONL or CSV); a row without "output" is an error, and a "token" is a word.
The output has the shape of engine.data.pipeline.PreparedData.to_dict(), or {"error": {...}} with exit code 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import yaml


def fail(message: str, where: str = "", hint: str = "", columns: list | None = None) -> int:
    error = {"message": message, "where": where, "hint": hint}
    if columns is not None:  # as the engine names a file's columns when the problem is which to use
        error["columns"] = columns
    print(json.dumps({"error": error}))
    print(f"error: {message}", file=sys.stderr)
    return 1


def read_rows(path: Path, report_problems: list) -> list[tuple[int, int | None, dict | None]]:
    """(row, line, record) triples; a malformed JSONL line gives a None record and a problem."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [(i, None, dict(r)) for i, r in enumerate(csv.DictReader(f), start=1)]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)  # a JSONDecodeError is reported by the caller
        return [(i, None, r) for i, r in enumerate(data, start=1)]
    rows = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = len(rows) + 1
        try:
            rows.append((row, line_no, json.loads(line)))
        except json.JSONDecodeError as exc:
            report_problems.append(problem(row, line_no, "", "malformed_json", f"not valid JSON ({exc.msg})"))
            rows.append((row, line_no, None))
    return rows


def problem(row, line, field, code, message, severity="error") -> dict:
    return {"row": row, "line": line, "field": field, "code": code, "message": message, "severity": severity}


def check(args) -> int:
    path = Path(args.source)
    if not path.is_file():
        return fail("no such file or folder", str(path), "check the path, or give a Hugging Face dataset id")
    problems: list[dict] = []
    try:
        rows = read_rows(path, problems)
    except json.JSONDecodeError as exc:
        return fail(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", str(path),
                    "fix the file, or if it has one JSON object per line, name it .jsonl")
    mapping = dict(item.split("=", 1) for item in args.columns)
    instruction, output = mapping.get("instruction", "instruction"), mapping.get("output", "output")
    records = [r for _, _, r in rows if isinstance(r, dict)]
    if args.format:
        reason = f"chosen by you ({args.format})"
    elif records and any(instruction in r for r in records):
        reason = f"instruction / input / output records: found '{instruction}' in the first {len(records)} rows"
    else:
        columns = list(dict.fromkeys(k for r in records for k in r))
        return fail("could not recognise the format from the columns: " + ", ".join(sorted(columns)), str(path),
                    "choose the format and map your columns, e.g. --format alpaca --columns "
                    "instruction=question output=answer", columns)
    usable, skipped = [], set()
    for row, line, record in rows:
        if record is None:
            skipped.add(row)
        elif not record.get(output):
            problems.append(problem(row, line, output, "missing_field", "the field is missing"))
            skipped.add(row)
        else:
            segments = [[f"<|user|>\n{record.get(instruction, '')}\n<|assistant|>\n", False],
                        [f"{record[output]}<|end|>", True], ["\n", False]]
            usable.append((row, segments, len("".join(s[0] for s in segments).split())))
    print(f"Tokenizing {len(usable)} rows…", file=sys.stderr, flush=True)
    lengths = sorted(n for _, _, n in usable)
    counts = {}
    for problem_ in problems:
        counts[problem_["code"]] = counts.get(problem_["code"], 0) + 1
    result = {
        "source": str(path), "file_type": path.suffix[1:], "template": "model", "cache_key": "fake",
        "cache_hit": False,
        "detection": {"format": args.format or "alpaca", "reason": reason,
                      "mapping": {"instruction": instruction, "output": output}},
        "report": {"rows_read": len(rows), "rows_usable": len(usable), "rows_skipped": len(skipped),
                   "skipped_rows": sorted(skipped), "counts": counts, "problems": problems,
                   "problems_listed": len(problems), "problems_total": len(problems)},
        "stats": stats(lengths, args.cutoff),
        "preview": [{"row": row, "tokens": min(n, args.cutoff), "truncated": n > args.cutoff, "segments": segments}
                    for row, segments, n in usable[:3]],
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if usable else 1


def stats(lengths: list[int], cutoff: int) -> dict:
    if not lengths:
        return {"rows": 0, "total_tokens": 0, "trained_tokens": 0, "percentiles": {}, "cutoff": cutoff,
                "truncated_rows": 0, "truncated_share": 0.0, "histogram": {}}
    width = max(1, math.ceil((lengths[-1] + 1) / 30))
    bins = [0] * math.ceil((lengths[-1] + 1) / width)
    for n in lengths:
        bins[n // width] += 1
    truncated = sum(1 for n in lengths if n > cutoff)
    return {"rows": len(lengths), "sequences": len(lengths), "total_tokens": sum(min(n, cutoff) for n in lengths),
            "trained_tokens": len(lengths), "mean_length": sum(lengths) / len(lengths),
            "percentiles": {"p50": lengths[len(lengths) // 2], "p95": lengths[int(len(lengths) * 0.95)],
                            "max": lengths[-1]},
            "cutoff": cutoff, "truncated_rows": truncated, "truncated_share": truncated / len(lengths),
            "histogram": {"edges": [i * width for i in range(len(bins) + 1)], "counts": bins}}


def main(argv: list[str]) -> int:
    split = argv.index("data")
    top = argparse.ArgumentParser()
    top.add_argument("--delay", type=float, default=0.0)
    top.add_argument("--crash", action="store_true")
    options = top.parse_args(argv[:split])
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["check"])
    parser.add_argument("config", help="the run config the app writes for a check")
    parser.add_argument("--json", action="store_true")
    config = yaml.safe_load(Path(parser.parse_args(argv[split + 1:]).config).read_text(encoding="utf-8"))
    data = config.get("data", {})
    args = argparse.Namespace(source=config["dataset"], format=data.get("format"), model=config.get("model", "demo"),
                              columns=[f"{k}={v}" for k, v in (data.get("columns") or {}).items()],
                              cutoff=data.get("cutoff", 1024))
    print(f"Loading the tokenizer of {args.model}…", file=sys.stderr, flush=True)
    time.sleep(options.delay)
    if options.crash:
        print("Traceback: simulated crash", file=sys.stderr, flush=True)
        return 3
    return check(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
