"""Hostile dataset files: ``prepare`` either reports what is wrong or raises a ``DatasetError`` naming the file.

Never another exception, never a hang. Several hundred malformed files are generated in ``tmp_path``: broken JSON,
wrong types in every field, binary garbage, wrong encodings, deep nesting, odd line endings, huge rows and columns,
and seeded random byte mutations of valid files. Cases that once exposed an engine bug keep a note of it.
"""

from __future__ import annotations

import csv
import faulthandler
import io
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from engine.heavy.data import cache
from engine.heavy.data.pipeline import DataSettings, PreparedData, prepare
from engine.heavy.data.problems import ERROR, WARNING
from engine.light.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent
SETTINGS = DataSettings(cutoff=256)
CASE_SECONDS = 20.0  # every case must finish within this
BIG_SECONDS = 120.0  # the 10 MB row
WATCHDOG_SECONDS = 300  # a real hang aborts the run with all stacks printed instead of blocking forever

# ---------------------------------------------------------------------------------------------------------------
# Engine bugs these cases found (all fixed): each case keeps a note of what it once exposed.


class Bug(NamedTuple):
    reason: str
    raises: type[BaseException]


BUG_NO_WHERE = Bug(
    reason=("BUG: formats.detect raises DatasetError with where='' (the file is not named) when no record with "
            "named fields exists or the columns match no format; pipeline.prepare does not add the source"),
    raises=AssertionError,
)
BUG_BIG_INT = Bug(
    reason=("BUG: an integer literal of more than 4300 digits makes json.loads raise ValueError (int max str "
            "digits), which readers._read_json/_parse_json_lines do not catch"),
    raises=ValueError,
)
BUG_SURROGATE = Bug(
    reason=("BUG: a lone UTF-16 surrogate written as a JSON escape (\\ud800) reaches the tokenizer, which raises "
            "TypeError 'TextEncodeInput must be ...' in tokenize.tokenize_all"),
    raises=TypeError,
)
BUG_DEEP_CELL = Bug(
    reason=("BUG: a list field given as a string of deeply nested JSON ('[' * 100000) makes json.loads in "
            "formats._RowChecker.sequence / formats._tools raise RecursionError (only JSONDecodeError is caught)"),
    raises=RecursionError,
)
BUG_ALL_NULL = Bug(
    reason=("BUG: records that are JSON null are taken for unparseable lines; when all are null "
            "pipeline.prepare reads report.problems[0] of an empty list: IndexError"),
    raises=IndexError,
)
BUG_NULL_SILENT = Bug(
    reason=("BUG: a record that is JSON null is dropped silently: counted in rows_read but neither usable "
            "nor skipped, and no problem is reported"),
    raises=AssertionError,
)
BUG_CSV_CR = Bug(
    reason=("BUG: a CSV/TSV with lone CR line endings makes readers._read_delimited's header sniff "
            "(csv.reader over io.StringIO without newline='') raise _csv.Error 'new-line character seen in "
            "unquoted field'"),
    raises=csv.Error,
)
BUG_CSV_FIELD_LIMIT = Bug(
    reason=("BUG: a CSV cell over 131072 characters makes the csv module in readers._record_lines (and "
            "the header sniff) raise _csv.Error 'field larger than field limit'"),
    raises=csv.Error,
)
BUG_CLI_SURROGATE = Bug(
    reason=("BUG: cli.main prints the DatasetError as JSON with ensure_ascii=False; a lone surrogate in a "
            "column name makes print() raise UnicodeEncodeError and the CLI dies with a traceback"),
    raises=AssertionError,
)


# ---------------------------------------------------------------------------------------------------------------
# Valid building blocks.

ALPACA = [
    {"instruction": "Name a colour.", "output": "Blue."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Greet the harbour master.", "output": "Good morning!", "system": "Be brief."},
    {"instruction": "Translate 'hello' into French.", "output": "Bonjour, with a comma, and \"quotes\"."},
]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello!"}]},
    {"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Is it late?"},
                       {"from": "gpt", "value": "A little."}]},
    {"conversations": [{"from": "human", "value": "Count to two"}, {"from": "gpt", "value": "One, two."},
                       {"from": "human", "value": "And three?"}, {"from": "gpt", "value": "Three."}]},
]
OPENAI = [{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello!"}]}]
PROMPT = [{"prompt": "What is 2 + 2?", "completion": "4"}]
TEXT = [{"text": "The harbour lights came on one by one as the fog rolled in."}]
WORDS = ("harbourmaster", "lighthouse", "fogbank", "fishing-boat", "mooring-rope", "springtide", "seagull",
         "breakwater", "lamplighter", "midnight", "lightkeeper", "whitecaps")


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def json_array(rows: list) -> bytes:
    return json.dumps(rows, ensure_ascii=False, indent=1).encode("utf-8")


def delimited(rows: list[dict], sep: str = ",") -> bytes:
    header = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([r.get(k, "") if isinstance(r.get(k, ""), str) else json.dumps(r[k]) for k in header])
    return out.getvalue().encode("utf-8")


def garbage(seed: str, size: int = 4096) -> bytes:
    return random.Random(seed).randbytes(size)


def parquet(columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def prose(n_chars: int, seed: str = "prose") -> str:
    rng = random.Random(seed)
    block = " ".join(rng.choice(WORDS) for _ in range(4000)) + ". "
    return (block * (n_chars // len(block) + 1))[:n_chars]


# ---------------------------------------------------------------------------------------------------------------
# Case registry: file name, a function making its bytes, the expected outcome (None: either is fine), time limit,
# and the rows that must be read when a report comes back.

REPORT, ERROR_RAISED = "report", "error"
CASES: list = []


def case(case_id: str, name: str, make: Callable[[], bytes], *, expect: str | None = None,
         limit: float = CASE_SECONDS, bug: Bug | None = None, rows_read: int | None = None) -> None:
    marks: list = []  # every bug found by these cases is fixed; `bug` records what each case once exposed
    if limit == BIG_SECONDS:
        marks.append(pytest.mark.slow)  # the very large inputs take seconds each
    CASES.append(pytest.param(name, make, expect, limit, rows_read, id=case_id, marks=marks))


EXTENSIONS = ("json", "jsonl", "csv", "tsv", "parquet", "txt")

# Empty, whitespace-only and binary garbage, in every supported file type.
for ext in EXTENSIONS:
    case(f"empty-{ext}", f"empty.{ext}", lambda: b"", expect=ERROR_RAISED)
    case(f"whitespace-{ext}", f"blank.{ext}", lambda: b"  \n\t\n\r\n   \n\n",
         bug=BUG_NO_WHERE if ext == "jsonl" else None)
    case(f"garbage-{ext}", f"garbage.{ext}", lambda ext=ext: garbage(ext))
    case(f"nul-only-{ext}", f"nul.{ext}", lambda: b"\x00" * 512)
case("empty-unknown-ext", "data.xlsx", lambda: b"PK\x03\x04garbage", expect=ERROR_RAISED)
case("no-extension", "dataset", lambda: jsonl(ALPACA), expect=ERROR_RAISED)
case("upper-case-ext", "DATA.JSONL", lambda: jsonl(ALPACA), expect=REPORT)
case("garbage-with-newlines-jsonl", "garbage-lines.jsonl", lambda: b"\n".join(garbage(f"l{i}", 64) for i in range(50)))
case("ascii-noise-jsonl", "noise.jsonl",
     lambda: "\n".join("".join(random.Random(i).choices("{}[]\":,abc0123 \\", k=80)) for i in range(40)).encode())

# Byte-order marks and encodings.
case("bom-json", "bom.json", lambda: b"\xef\xbb\xbf" + json_array(ALPACA), expect=REPORT)
case("bom-jsonl", "bom.jsonl", lambda: b"\xef\xbb\xbf" + jsonl(ALPACA), expect=REPORT)
case("bom-csv", "bom.csv", lambda: b"\xef\xbb\xbf" + delimited(ALPACA), expect=REPORT)
case("bom-tsv", "bom.tsv", lambda: b"\xef\xbb\xbf" + delimited(ALPACA, "\t"), expect=REPORT)
case("bom-txt", "bom.txt", lambda: b"\xef\xbb\xbfFirst paragraph.\n\nSecond paragraph.\n", expect=REPORT)
case("bom-every-line-jsonl", "bom-lines.jsonl",
     lambda: b"".join(b"\xef\xbb\xbf" + line for line in jsonl(ALPACA).splitlines(True)))
case("double-bom-json", "bom2.json", lambda: b"\xef\xbb\xbf\xef\xbb\xbf" + json_array(ALPACA), expect=ERROR_RAISED)
ENCODINGS = {"latin1": "latin-1", "cp1252": "cp1252", "utf16": "utf-16", "utf16le": "utf-16-le",
             "utf16be": "utf-16-be", "utf32": "utf-32"}
ACCENTED = [{"instruction": "Écris « café ».", "output": "Café crème, s'il vous plaît."}] + ALPACA
for label, encoding in ENCODINGS.items():
    case(f"{label}-jsonl", f"{label}.jsonl", lambda e=encoding: jsonl(ACCENTED).decode().encode(e))
    case(f"{label}-json", f"{label}.json", lambda e=encoding: json_array(ACCENTED).decode().encode(e))
    case(f"{label}-csv", f"{label}.csv", lambda e=encoding: delimited(ACCENTED).decode().encode(e))
    case(f"{label}-txt", f"{label}.txt", lambda e=encoding: "Élan vital.\n\nÇa va.\n".encode(e))
case("invalid-utf8-mid-jsonl", "bad-utf8.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "\xc0\x80", "output": "x"}\n',
     expect=ERROR_RAISED)
case("utf8-encoded-surrogate-jsonl", "cesu.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "\xed\xa0\x80", "output": "x"}\n',
     expect=ERROR_RAISED)

# Truncated and otherwise broken JSON.
for cut in (1, 2, 10, 37, 100, -40, -2, -1):
    case(f"truncated-json-{cut}", f"truncated{cut}.json", lambda cut=cut: json_array(ALPACA)[:cut])
    case(f"truncated-jsonl-{cut}", f"truncated{cut}.jsonl", lambda cut=cut: jsonl(ALPACA)[:cut])
case("trailing-commas-json", "commas.json", lambda: b'[{"instruction": "a", "output": "b",},]', expect=ERROR_RAISED)
case("single-quotes-jsonl", "python.jsonl", lambda: "".join(repr(r) + "\n" for r in ALPACA).encode())
case("comments-json", "comments.json", lambda: b"// a comment\n" + json_array(ALPACA), expect=ERROR_RAISED)
case("concatenated-json", "concat.json", lambda: json_array(ALPACA[:2]) + json_array(ALPACA[2:]))
case("json-named-jsonl-array", "array.jsonl", lambda: json.dumps(ALPACA).encode(), bug=BUG_NO_WHERE)
case("json-named-jsonl-pretty", "pretty.jsonl", lambda: json_array(ALPACA))
case("jsonl-named-json", "lines.json", lambda: jsonl(ALPACA), expect=REPORT)
case("json-scalar-number", "number.json", lambda: b"42", expect=ERROR_RAISED)
case("json-scalar-string", "string.json", lambda: b'"instruction"', expect=ERROR_RAISED)
case("json-scalar-true", "true.json", lambda: b"true", expect=ERROR_RAISED)
case("json-scalar-null", "null.json", lambda: b"null", expect=ERROR_RAISED)
case("json-empty-array", "empty-array.json", lambda: b"[]", bug=BUG_NO_WHERE)
case("json-empty-object", "empty-object.json", lambda: b"{}", bug=BUG_NO_WHERE)
case("json-array-of-numbers", "numbers.json", lambda: b"[1, 2.5, -3, 1e999]", bug=BUG_NO_WHERE)
case("json-array-of-arrays", "arrays.json", lambda: json.dumps([list(r.values()) for r in ALPACA]).encode(),
     bug=BUG_NO_WHERE)
case("json-object-empty-data", "empty-data.json", lambda: b'{"data": []}', bug=BUG_NO_WHERE)
case("json-object-two-arrays", "two-arrays.json", lambda: json.dumps({"train": ALPACA, "test": ALPACA}).encode(),
     expect=ERROR_RAISED)
case("json-object-wrapped", "wrapped.json", lambda: json.dumps({"version": 2, "data": ALPACA}).encode(), expect=REPORT)
case("json-all-null", "nulls.json", lambda: b"[null, null, null]", bug=BUG_ALL_NULL)
case("jsonl-all-null", "nulls.jsonl", lambda: b"null\nnull\n", bug=BUG_ALL_NULL)
case("json-null-among-records", "some-null.json", lambda: json.dumps([None] + ALPACA).encode(), bug=BUG_NULL_SILENT)
case("jsonl-null-among-records", "some-null.jsonl", lambda: b"null\n" + jsonl(ALPACA), bug=BUG_NULL_SILENT)
case("jsonl-non-records-mixed", "non-records.jsonl",
     lambda: jsonl(ALPACA) + b'[1, 2]\n"text"\n42\ntrue\n3.5\n[]\n{}\n', expect=REPORT, rows_read=11)
case("jsonl-only-non-records", "only-non-records.jsonl", lambda: b'[1]\n"a"\n42\ntrue\n', bug=BUG_NO_WHERE)
case("duplicate-keys-json", "dupkeys.json",
     lambda: b'[{"instruction": "a", "instruction": 5, "output": "b", "output": null}, '
             b'{"instruction": "c", "output": "d", "output": "e"}]', expect=REPORT, rows_read=2)
case("duplicate-keys-jsonl", "dupkeys.jsonl",
     lambda: b'{"instruction": "a", "output": "b", "instruction": ["x"]}\n{"instruction": "c", "output": "d"}\n',
     expect=REPORT, rows_read=2)
case("exact-duplicate-rows", "dups.jsonl", lambda: jsonl(ALPACA[:1] * 3000), expect=REPORT, rows_read=3000)
case("unrecognised-columns-jsonl", "columns.jsonl", lambda: jsonl([{"question": "a", "reply": "b"}] * 3),
     bug=BUG_NO_WHERE)

# Mixed formats in one file.
case("mixed-alpaca-then-sharegpt-jsonl", "mixed.jsonl", lambda: jsonl(ALPACA + SHAREGPT), expect=REPORT,
     rows_read=7)
case("mixed-alpaca-then-sharegpt-json", "mixed.json", lambda: json_array(ALPACA + SHAREGPT), expect=REPORT,
     rows_read=7)
case("mixed-sharegpt-then-alpaca-jsonl", "mixed2.jsonl", lambda: jsonl(SHAREGPT + ALPACA), expect=REPORT,
     rows_read=7)
case("mixed-every-format-jsonl", "every.jsonl", lambda: jsonl(ALPACA + SHAREGPT + OPENAI + PROMPT + TEXT),
     expect=REPORT, rows_read=10)
case("mixed-sharegpt-csv-cells", "sharegpt.csv", lambda: delimited(SHAREGPT + ALPACA[:1]), expect=REPORT)
case("conversation-cell-bad-json-csv", "badcell.csv",
     lambda: b'conversations\n"[{""from"": ""human"", ""value"": ""hi""}, {"\n"[oops"\n', expect=REPORT)

# Deep nesting.
DEEP = 100_000
case("deep-open-json", "deep.json", lambda: b"[" * DEEP, expect=ERROR_RAISED)
case("deep-open-jsonl", "deep.jsonl", lambda: b"[" * DEEP + b"\n", expect=ERROR_RAISED)
case("deep-closed-json", "deep-closed.json", lambda: b"[" * DEEP + b"]" * DEEP, expect=ERROR_RAISED)
case("deep-objects-json", "deep-objects.json", lambda: b'{"a":' * DEEP + b"1" + b"}" * DEEP, expect=ERROR_RAISED)
case("deep-value-in-row-jsonl", "deep-value.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "a", "output": ' + b"[" * DEEP + b"]" * DEEP + b"}\n",
     expect=REPORT, rows_read=5)
case("deep-moderate-value-jsonl", "deep-500.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "a", "output": ' + b"[" * 500 + b"]" * 500 + b"}\n",
     expect=REPORT, rows_read=5)
case("deep-open-txt", "deep.txt", lambda: b"[" * DEEP, expect=REPORT)
case("deep-cell-alpaca-csv", "deep-output.csv", lambda: b"instruction,output\nhi," + b"[" * DEEP + b"\n")
case("deep-string-conversations-jsonl", "deep-conv.jsonl",
     lambda: jsonl(SHAREGPT + [{"conversations": "[" * DEEP}]), bug=BUG_DEEP_CELL)
case("deep-string-conversations-csv", "deep-conv.csv", lambda: b"conversations\n" + b"[" * DEEP + b"\n",
     bug=BUG_DEEP_CELL)
case("deep-string-tools-jsonl", "deep-tools.jsonl",
     lambda: jsonl([dict(SHAREGPT[0], tools="[" * DEEP)]), bug=BUG_DEEP_CELL)
case("deep-string-messages-jsonl", "deep-messages.jsonl",
     lambda: jsonl(OPENAI + [{"messages": "[" * DEEP}]), bug=BUG_DEEP_CELL)
case("deep-string-history-jsonl", "deep-history.jsonl",
     lambda: jsonl(ALPACA + [dict(ALPACA[0], history="[" * DEEP)]), bug=BUG_DEEP_CELL)
case("deep-moderate-tools-jsonl", "deep-tools-500.jsonl",
     lambda: jsonl(SHAREGPT)[:-2] + b', "tools": ' + b"[" * 500 + b"]" * 500 + b"}\n", expect=REPORT)

# NUL bytes, line endings, unicode separators.
case("nul-in-jsonl-line", "nul.jsonl", lambda: jsonl(ALPACA[:2]) + b'{"instruction": "a\x00b", "output": "c"}\n\x00\n',
     expect=REPORT)
case("escaped-nul-jsonl", "escaped-nul.jsonl", lambda: jsonl([{"instruction": "a\x00b", "output": "\x00"}] + ALPACA),
     expect=REPORT)
case("nul-in-csv", "nul.csv", lambda: b"instruction,output\na\x00b,c\x00\nd,e\n")
case("nul-in-txt", "nul.txt", lambda: b"para\x00graph one\n\n\x00\n\nparagraph two\n")
case("crlf-jsonl", "crlf.jsonl", lambda: jsonl(ALPACA).replace(b"\n", b"\r\n"), expect=REPORT, rows_read=4)
case("crlf-json", "crlf.json", lambda: json_array(ALPACA).replace(b"\n", b"\r\n"), expect=REPORT, rows_read=4)
case("crlf-csv", "crlf.csv", lambda: delimited(ALPACA).replace(b"\n", b"\r\n"), expect=REPORT)
case("crlf-txt", "crlf.txt", lambda: b"One.\r\n\r\nTwo.\r\n", expect=REPORT)
case("lone-cr-jsonl", "cr.jsonl", lambda: jsonl(ALPACA).replace(b"\n", b"\r"))
case("lone-cr-json", "cr.json", lambda: json_array(ALPACA).replace(b"\n", b"\r"), expect=REPORT)
case("lone-cr-csv", "cr.csv", lambda: delimited(ALPACA).replace(b"\n", b"\r"), bug=BUG_CSV_CR)
case("lone-cr-tsv", "cr.tsv", lambda: delimited(ALPACA, "\t").replace(b"\n", b"\r"), bug=BUG_CSV_CR)
case("lone-cr-txt", "cr.txt", lambda: b"One.\r\rTwo.\r", expect=REPORT)
case("mixed-endings-jsonl", "endings.jsonl",
     lambda: b"\r\n".join(jsonl(ALPACA[:2]).splitlines()) + b"\r" + jsonl(ALPACA[2:]) + b"\n\r\n\r")
case("no-final-newline-jsonl", "nofinal.jsonl", lambda: jsonl(ALPACA).rstrip(b"\n"), expect=REPORT, rows_read=4)
for sep_name, sep in (("u2028", "\u2028"), ("u2029", "\u2029"), ("nel", "\u0085"), ("vt", "\x0b"), ("ff", "\x0c")):
    case(f"{sep_name}-between-records-jsonl", f"{sep_name}-sep.jsonl",
         lambda sep=sep: sep.join(json.dumps(r) for r in ALPACA).encode("utf-8"))
    case(f"{sep_name}-inside-values-jsonl", f"{sep_name}-in.jsonl",
         lambda sep=sep: jsonl([{"instruction": f"a{sep}b", "output": f"c{sep}d{sep}"}] + ALPACA), expect=REPORT,
         rows_read=5)
    case(f"{sep_name}-txt", f"{sep_name}.txt", lambda sep=sep: f"one{sep}two{sep}{sep}three\n\nfour".encode())
    case(f"{sep_name}-csv", f"{sep_name}.csv",
         lambda sep=sep: f"instruction,output\na{sep}b,c\n\"d{sep}\",e{sep}\n".encode())

# Numbers and non-finite values where text is expected.
NUMBERS = {"nan": "NaN", "inf": "Infinity", "neg-inf": "-Infinity", "overflow": "1e999", "neg-zero": "-0.0",
           "tiny": "5e-324", "long-float": "1" * 5000 + ".5", "int-4300": "7" * 4300}
for label, literal in NUMBERS.items():
    case(f"number-{label}-jsonl", f"number-{label}.jsonl",
         lambda lit=literal: jsonl(ALPACA) + f'{{"instruction": {lit}, "output": {lit}}}\n'.encode(),
         expect=REPORT, rows_read=5)
case("number-huge-int-jsonl", "huge-int.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "a", "output": ' + b"9" * 5000 + b"}\n", bug=BUG_BIG_INT)
case("number-huge-int-json", "huge-int.json",
     lambda: b'[{"instruction": "a", "output": ' + b"9" * 5000 + b"}]", bug=BUG_BIG_INT)
case("number-nan-csv", "nan.csv", lambda: b"instruction,output\nNaN,nan\nNone,null\n-inf,1e999\n", expect=REPORT)
case("number-nan-text-format", "nan-text.jsonl", lambda: b'{"text": NaN}\n{"text": Infinity}\n{"text": "ok"}\n',
     expect=REPORT, rows_read=3)

# Unicode oddities.
case("lone-surrogate-instruction-jsonl", "surrogate.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "a\\ud800b", "output": "c"}\n', bug=BUG_SURROGATE)
case("lone-surrogate-sharegpt-json", "surrogate.json",
     lambda: b'[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "\\udfff"}]}]',
     bug=BUG_SURROGATE)
case("lone-surrogate-text-jsonl", "surrogate-text.jsonl", lambda: b'{"text": "end \\udbff"}\n', bug=BUG_SURROGATE)
case("surrogate-pair-escaped-jsonl", "emoji.jsonl",
     lambda: jsonl(ALPACA) + b'{"instruction": "\\ud83d\\ude00", "output": "\\ud83c\\udf0a"}\n', expect=REPORT)
case("lone-surrogate-key-jsonl", "surrogate-key.jsonl", lambda: b'{"\\udfff": "a"}\n', bug=BUG_NO_WHERE)
case("surrogate-extra-key-jsonl", "surrogate-extra.jsonl",
     lambda: "".join(json.dumps(dict(r, **{"\udfff": 1})) + "\n" for r in ALPACA).encode(), expect=REPORT)
case("rtl-and-combining-jsonl", "rtl.jsonl",
     lambda: jsonl([{"instruction": "\u202e\u0301" * 100 + "مرحبا", "output": "e\u0301" * 500 + "\ufeff\ufffd"}]),
     expect=REPORT)
case("private-use-and-nonchars-txt", "nonchars.txt", lambda: "\ue000\U0010ffff\ufffe\uffff\n\n\U0001f600".encode())

# Extremely long lines, many columns, a 10 MB row.
case("ten-mb-row-jsonl", "huge-row.jsonl",
     lambda: jsonl([{"instruction": "Summarise the logbook.", "output": prose(10_000_000)}]),
     expect=REPORT, rows_read=1, limit=BIG_SECONDS)
case("long-unterminated-line-jsonl", "long-line.jsonl", lambda: b'{"instruction": "' + b"x" * 2_000_000,
     expect=ERROR_RAISED)
case("long-line-no-spaces-jsonl", "no-spaces.jsonl", lambda: jsonl([{"instruction": "x", "output": "a" * 300_000}]),
     expect=REPORT)
case("long-line-txt", "long-line.txt", lambda: prose(1_000_000).encode(), expect=REPORT)
case("long-cell-csv", "long-cell.csv", lambda: b"instruction,output\nhi," + prose(500_000).encode() + b"\n",
     bug=BUG_CSV_FIELD_LIMIT)
case("long-header-cell-tsv", "long-header.tsv", lambda: b"instruction\toutput\t" + b"h" * 200_000 + b"\na\tb\tc\n",
     bug=BUG_CSV_FIELD_LIMIT)
case("cell-just-under-limit-csv", "long-cell-ok.csv",
     lambda: b"instruction,output\nhi," + prose(120_000).encode() + b"\n", expect=REPORT)
case("long-key-jsonl", "long-key.jsonl", lambda: jsonl([dict(r, **{"k" * 100_000: 1}) for r in ALPACA]),
     expect=REPORT)
case("many-keys-jsonl", "many-keys.jsonl",
     lambda: jsonl([{**{f"k{i}": i for i in range(50_000)}, **ALPACA[0]}, ALPACA[1]]), expect=REPORT, rows_read=2)
case("many-columns-csv", "many-columns.csv",
     lambda: delimited([{**{f"c{i}": "x" for i in range(2_000)}, **ALPACA[0]}]), expect=REPORT)
case("many-columns-no-match-csv", "many-columns-bad.csv",
     lambda: delimited([{f"c{i}": "x" for i in range(500)}]), bug=BUG_NO_WHERE)

# CSV and TSV specifics.
case("csv-ragged-long-rows", "ragged.csv", lambda: b"instruction,output\na,b\nc,d,e,f\ng,h\n")
case("csv-ragged-short-rows", "short.csv", lambda: b"instruction,output\na,b\nc\n\ng,h\n")
case("csv-unbalanced-quote", "quote.csv", lambda: b'instruction,output\n"a,b\nc,d\n', expect=ERROR_RAISED)
case("csv-quote-mid-cell", "midquote.csv", lambda: b'instruction,output\na"b,c"d\n"e""f",g\n')
case("tsv-unbalanced-quote", "quote.tsv", lambda: b'instruction\toutput\n"a\tb\n', expect=ERROR_RAISED)
case("csv-header-only", "header.csv", lambda: b"instruction,output\n", expect=ERROR_RAISED)
case("csv-duplicate-header", "dupheader.csv", lambda: b"instruction,instruction,output\na,b,c\n")
case("csv-empty-header-cell", "emptyheader.csv", lambda: b"instruction,,output\na,b,c\n")
case("csv-multiline-header", "mlheader.csv", lambda: b'"instr\nuction",output\na,b\n', bug=BUG_NO_WHERE)
case("csv-semicolons", "semicolons.csv", lambda: b"instruction;output\na;b\nc;d\n", bug=BUG_NO_WHERE)
case("csv-really-json", "json.csv", lambda: json_array(ALPACA))
case("tsv-really-csv", "csv.tsv", lambda: delimited(ALPACA), bug=BUG_NO_WHERE)
case("csv-quoted-newlines", "newlines.csv", lambda: b'instruction,output\n"line1\nline2\r\nline3","a\rb"\nc,d\n',
     expect=REPORT)
case("csv-blank-lines", "blanklines.csv", lambda: b"\n\ninstruction,output\n\n\na,b\n\n,\n\n")

# Parquet.
case("parquet-really-text", "text.parquet", lambda: b"instruction,output\nhello,world\n", expect=ERROR_RAISED)
case("parquet-really-jsonl", "jsonl.parquet", lambda: jsonl(ALPACA), expect=ERROR_RAISED)
case("parquet-magic-only", "magic.parquet", lambda: b"PAR1" + garbage("pq", 200) + b"PAR1", expect=ERROR_RAISED)
case("parquet-truncated", "truncated.parquet",
     lambda: parquet({"instruction": ["a", "b"], "output": ["c", "d"]})[:-30], expect=ERROR_RAISED)
case("parquet-wrong-types", "types.parquet",
     lambda: parquet({"instruction": [1, 2, 3], "output": [[1, 2], [3], []], "system": [{"a": 1}, {"a": 2}, None]}),
     expect=REPORT, rows_read=3)
case("parquet-binary-and-floats", "binary.parquet",
     lambda: parquet({"instruction": [b"\xff\x00", b"ok"], "output": [math.nan, math.inf]}), expect=REPORT)
case("parquet-zero-rows", "zero.parquet", lambda: parquet({"instruction": [], "output": []}))
case("parquet-deep-conversation-string", "deep-conv.parquet", lambda: parquet({"conversations": ["[" * DEEP]}),
     bug=BUG_DEEP_CELL)
case("parquet-conversation-wrong-shape", "conv.parquet",
     lambda: parquet({"conversations": [[{"from": "human", "value": "x"}], [{"from": "gpt", "value": "y"}]]}),
     expect=REPORT)

# Wrong types in every field of every format: a valid row first, then the row with one hostile value.
HOSTILE = {"null": None, "bool": True, "int": 42, "nan": math.nan, "object": {"k": "v"}, "nested": [["x", 1]],
           "blank": "   "}


def _with(base: dict, path: tuple, value) -> dict:
    row = json.loads(json.dumps(base))
    target = row
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return row


BAD_ROW = {
    "alpaca": {"instruction": "Name a fruit.", "input": "red", "output": "Apple.", "system": "Be brief.",
               "history": [["Hi", "Hello"]]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Name a fruit"}, {"from": "gpt", "value": "Apple"}],
                 "system": "Be brief.", "tools": [{"name": "lookup"}]},
    "openai": {"messages": [{"role": "user", "content": "Name a fruit"},
                            {"role": "assistant", "content": "Apple", "weight": 1}], "tools": [{"name": "lookup"}]},
    "prompt": {"prompt": "Name a fruit", "completion": "Apple"},
    "text": {"text": "Apples grow on trees."},
}
GOOD_ROW = {"alpaca": ALPACA[0], "sharegpt": SHAREGPT[0], "openai": OPENAI[0], "prompt": PROMPT[0], "text": TEXT[0]}
FIELDS = {
    "alpaca": [("instruction",), ("input",), ("output",), ("system",), ("history",)],
    "sharegpt": [("conversations",), ("conversations", 1, "from"), ("conversations", 1, "value"), ("system",),
                 ("tools",)],
    "openai": [("messages",), ("messages", 1, "role"), ("messages", 1, "content"), ("messages", 1, "weight"),
               ("tools",)],
    "prompt": [("prompt",), ("completion",)],
    "text": [("text",)],
}
for fmt, paths in FIELDS.items():
    for path in paths:
        field_id = ".".join(str(p) for p in path)
        for ext, write in (("jsonl", jsonl), ("json", json_array)):
            # One file per field and file type: the valid row, then one row per hostile value.
            case(f"type-{fmt}-{field_id}-{ext}", f"type-{fmt}-{field_id}.{ext}",
                 lambda f=fmt, p=path, w=write: w([GOOD_ROW[f]] + [_with(BAD_ROW[f], p, v) for v in HOSTILE.values()]),
                 expect=REPORT, rows_read=1 + len(HOSTILE))
case("type-every-field-wrong", "all-wrong.jsonl",
     lambda: jsonl([{"instruction": v, "output": v, "input": v, "system": v} for v in HOSTILE.values()]),
     expect=REPORT, rows_read=len(HOSTILE))

# Seeded random mutations (byte flips, truncation, deletion, duplication, hostile insertions) of valid files.
INSERTS = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"\n", b"\r", b"\x00", b"\\", b"\xff", b"\xc3", b"\xe2\x80\xa8",
           b"\t", b"NaN", b"null", b'""', b"\xef\xbb\xbf"]
BASES = {"jsonl": lambda: jsonl(ALPACA + ALPACA[:1]), "json": lambda: json_array(SHAREGPT),
         "csv": lambda: delimited(ALPACA)}
MUTATIONS_PER_BASE = 40
# Mutations that land on a known bug (found by running them; the seeds make them repeatable).
MUTATION_BUGS = {f"mutation-csv-{i:02d}": BUG_NO_WHERE for i in (0, 4, 11, 28)}  # a header name is damaged


def mutate(data: bytes, seed: str) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not out:
            break
        pos = rng.randrange(len(out))
        op = rng.choice(("flip", "flip", "truncate", "delete", "duplicate", "insert", "insert"))
        if op == "flip":
            out[pos] = rng.randrange(256)
        elif op == "truncate":
            del out[pos:]
        elif op == "delete":
            del out[pos : pos + rng.randint(1, 16)]
        elif op == "duplicate":
            out[pos:pos] = out[pos : pos + rng.randint(1, 40)]
        else:
            out[pos:pos] = rng.choice(INSERTS)
    return bytes(out)


for ext, base in BASES.items():
    for i in range(MUTATIONS_PER_BASE):
        mutation_id = f"mutation-{ext}-{i:02d}"
        case(mutation_id, f"mutated-{i:02d}.{ext}", lambda b=base, s=mutation_id: mutate(b(), s),
             bug=MUTATION_BUGS.get(mutation_id))


# ---------------------------------------------------------------------------------------------------------------
# The contract.


def check_report(prepared: PreparedData) -> None:
    report = prepared.report
    assert 0 <= report.rows_usable <= report.rows_read
    # Every row read is either usable or skipped with a reason: never dropped silently.
    assert report.rows_read == report.rows_usable + report.rows_skipped, report.summary()
    assert report.skipped_rows <= set(range(1, report.rows_read + 1))
    assert all(n > 0 for n in report.counts.values())
    assert sum(report.counts.values()) >= len(report.problems)
    for problem in report.problems:
        assert problem.severity in (ERROR, WARNING)
        assert problem.code and problem.message.strip()
        assert 1 <= problem.row <= report.rows_read
        assert report.counts[problem.code] >= 1
    if sum(report.counts.values()) == len(report.problems):  # every problem listed
        assert {p.row for p in report.problems if p.severity == ERROR} == report.skipped_rows
    assert prepared.usable == (report.rows_usable > 0)
    # What `data check --json` prints must be encodable.
    json.dumps(prepared.to_dict(), ensure_ascii=False).encode("utf-8")


_FINGERPRINTS: dict[int, tuple[object, str]] = {}


@pytest.fixture(autouse=True)
def fingerprint_once(monkeypatch):
    """cache.tokenizer_fingerprint serialises the whole tokenizer (about 60 ms) on every prepare, cache or not; the
    session tokenizer never changes, so hundreds of cases share one fingerprint instead of spending ~25 s on it."""
    original = cache.tokenizer_fingerprint

    def once(tokenizer) -> str:
        if id(tokenizer) not in _FINGERPRINTS:
            _FINGERPRINTS[id(tokenizer)] = (tokenizer, original(tokenizer))  # holding it keeps the id unique
        return _FINGERPRINTS[id(tokenizer)][1]

    monkeypatch.setattr(cache, "tokenizer_fingerprint", once)


def run_case(path: Path, tokenizer, limit: float):
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    start = time.monotonic()
    try:
        try:
            outcome = prepare(path, tokenizer, SETTINGS, use_cache=False)
        except DatasetError as exc:
            outcome = exc
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.monotonic() - start
    assert elapsed < limit, f"{path.name} took {elapsed:.1f} s (limit {limit:.0f} s)"
    return outcome


@pytest.mark.parametrize("name, make, expect, limit, rows_read", CASES)
def test_hostile_file(tmp_path, tokenizer, name, make, expect, limit, rows_read):
    path = tmp_path / name
    path.write_bytes(make())
    outcome = run_case(path, tokenizer, limit)
    if isinstance(outcome, DatasetError):
        assert outcome.message.strip(), "a DatasetError needs a message"
        assert str(outcome).strip()
        assert name in outcome.where, f"the error does not name the file: where={outcome.where!r}, {outcome.message!r}"
        assert expect != REPORT, f"expected a report, got an error: {outcome}"
    else:
        assert isinstance(outcome, PreparedData)
        check_report(outcome)
        assert expect != ERROR_RAISED, f"expected a DatasetError, got a report: {outcome.report.summary()}"
        if rows_read is not None:
            assert outcome.report.rows_read == rows_read
            if name.startswith("type-"):  # the valid first row survives any hostile value in the second
                assert outcome.report.rows_usable >= 1 and 1 not in outcome.report.skipped_rows


def test_case_count():
    assert len(CASES) >= 200


# ---------------------------------------------------------------------------------------------------------------
# The real CLI on a few representative bad files. Each process spends seconds importing, so all are started in the
# background before the first case of this module runs and are collected by the CLI tests at the end.

CLI_FILES = {
    "truncated.jsonl": lambda: jsonl(ALPACA + [{"instruction": v, "output": v} for v in HOSTILE.values()])
    + b'{"instruction": "cut off", "out',
    "garbage.jsonl": lambda: garbage("cli"),
    "text.parquet": lambda: b"instruction,output\nhello,world\n",
    "wrong-types.json": lambda: json_array([{"instruction": v, "output": v} for v in HOSTILE.values()]),
    "surrogate-key.jsonl": lambda: b'{"\\udfff": "a"}\n',
}
CLI_BUGS = {"surrogate-key.jsonl": BUG_CLI_SURROGATE}
CLI_TEST = "test_cli_data_check_on_bad_file"
CLI_SECONDS = 240


@pytest.fixture(scope="module", autouse=True)
def cli_runs(request, tmp_path_factory):
    """name -> (process, stdout file, stderr file, start time), for the CLI files whose test was selected."""
    wanted = {item.callspec.params["name"] for item in request.session.items
              if getattr(item, "originalname", "") == CLI_TEST and item.module is request.module}
    runs = {}
    if wanted:
        model = request.getfixturevalue("demo_model_dir")
        folder = tmp_path_factory.mktemp("cli-files")
        home = tmp_path_factory.mktemp("cli-home")
        for name in sorted(wanted):
            path = folder / name
            path.write_bytes(CLI_FILES[name]())
            out, err = folder / f"{name}.stdout", folder / f"{name}.stderr"
            command = [sys.executable, "-m", "engine", "--home", str(home), "data", "check", str(path), "--json",
                       "--model", str(model)]
            with open(out, "wb") as stdout, open(err, "wb") as stderr:
                process = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
            runs[name] = (process, out, err, time.monotonic())
    yield runs
    for process, *_ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("name", [pytest.param(n, id=n)
                                  for n in CLI_FILES])
def test_cli_data_check_on_bad_file(cli_runs, name):
    process, out, err, start = cli_runs[name]
    try:
        code = process.wait(timeout=max(1.0, CLI_SECONDS - (time.monotonic() - start)))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"`data check` on {name} did not finish within {CLI_SECONDS} s")
    stdout = out.read_text(encoding="utf-8", errors="replace")
    stderr = err.read_text(encoding="utf-8", errors="replace")
    assert code in (0, 1), f"exit {code}: {stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-2000:]
    data = json.loads(stdout)
    assert isinstance(data, dict)
    if "error" in data:
        assert code == 1
        assert data["error"]["message"] and name in data["error"]["where"]
    else:
        assert code == (0 if data["report"]["rows_usable"] > 0 else 1)


def test_every_hostile_file_opens_in_the_app_data_table(qapp, tmp_path):
    """The Dataset page's own reader (the raw table, which never goes through the engine) on every case: no
    exception and no hang, within a second per file (the engine's check explains what is wrong)."""
    from PySide6.QtCore import Qt

    from gui.widgets.records_model import RecordsModel

    slow, shown = [], 0
    for name, make, *_ in (case.values for case in CASES):
        path = tmp_path / name
        path.write_bytes(make())
        start = time.monotonic()
        model = RecordsModel(path)
        model.ensure_row(10**7)  # index to the end of the file
        for row in range(min(model.rowCount(), 20)):
            model.headerData(row, Qt.Orientation.Vertical)
            for column in range(model.columnCount()):
                model.data(model.index(row, column))
                model.data(model.index(row, column), Qt.ItemDataRole.ForegroundRole)
        shown += model.rowCount() > 0
        model.close()
        if time.monotonic() - start > 1.0:
            slow.append(name)
        path.unlink()
    assert not slow, f"slow to open: {slow}"
    assert shown > len(CASES) // 3  # most hostile files still show their readable rows
