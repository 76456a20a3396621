"""Format detection and normalisation: every format × every file type, written as real files to tmp_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from engine.heavy.data import formats, readers
from engine.heavy.data.problems import Report
from engine.light.errors import DatasetError

# ---------------------------------------------------------------------------------------------------------------
# Records of each format, and what they normalise to.
# ---------------------------------------------------------------------------------------------------------------

ALPACA_ROWS = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour."},
]
ALPACA_MESSAGES = [
    [("user", "Name a colour.", False), ("assistant", "Blue.", True)],
    [("user", "Translate to French.\n\nGood morning", False), ("assistant", "Bonjour.", True)],
]

SHAREGPT_ROWS = [
    {"conversations": [{"from": "human", "value": "Hi, who are you?"}, {"from": "gpt", "value": "A helper."}]},
    {"conversations": [
        {"from": "system", "value": "Be terse."},
        {"from": "human", "value": "2+2?"},
        {"from": "gpt", "value": "4"},
        {"from": "human", "value": "And 3+3?"},
        {"from": "gpt", "value": "6"},
    ]},
]
SHAREGPT_MESSAGES = [
    [("user", "Hi, who are you?", False), ("assistant", "A helper.", True)],
    [("system", "Be terse.", False), ("user", "2+2?", False), ("assistant", "4", True),
     ("user", "And 3+3?", False), ("assistant", "6", True)],
]

OPENAI_ROWS = [
    {"messages": [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Hello"},
                  {"role": "assistant", "content": "Hi there!"}]},
    {"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima."}]},
]
OPENAI_MESSAGES = [
    [("system", "You are kind.", False), ("user", "Hello", False), ("assistant", "Hi there!", True)],
    [("user", "Capital of Peru?", False), ("assistant", "Lima.", True)],
]

PC_ROWS = [
    {"prompt": "The sky is", "completion": " blue."},
    {"prompt": "Grass is", "completion": " green."},
]
PC_MESSAGES = [
    [("user", "The sky is", False), ("assistant", " blue.", True)],
    [("user", "Grass is", False), ("assistant", " green.", True)],
]

TEXT_ROWS = [{"text": "The first document."}, {"text": "The second document, longer."}]
TEXT_VALUES = ["The first document.", "The second document, longer."]

CASES = {
    "alpaca": (ALPACA_ROWS, ALPACA_MESSAGES, ["'instruction'", "'input'", "'output'"]),
    "sharegpt": (SHAREGPT_ROWS, SHAREGPT_MESSAGES, ["'conversations'"]),
    "openai": (OPENAI_ROWS, OPENAI_MESSAGES, ["'messages'"]),
    "prompt_completion": (PC_ROWS, PC_MESSAGES, ["'prompt'", "'completion'"]),
    "text": (TEXT_ROWS, TEXT_VALUES, ["'text'"]),
}
NESTED = {"sharegpt": "conversations", "openai": "messages"}


# ---------------------------------------------------------------------------------------------------------------
# Writers: one small helper per file type.
# ---------------------------------------------------------------------------------------------------------------


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _flat(records: list[dict]) -> list[dict]:
    """Nested values (lists of turns) become JSON text, as a spreadsheet would hold them."""
    return [{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()} for r in records]


def write_delimited(path: Path, records: list[dict], delimiter: str) -> Path:
    rows = _flat(records)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, records: list[dict]) -> Path:
    import pandas as pd

    pd.DataFrame(records).to_parquet(path)
    return path


def write_disk(path: Path, records: list[dict]) -> Path:
    import datasets

    datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


WRITERS = {
    "json": lambda tmp, recs: write_json(tmp / "data.json", recs),
    "json_object": lambda tmp, recs: write_json(tmp / "data.json", {"version": 2, "data": recs}),
    "jsonl": lambda tmp, recs: write_jsonl(tmp / "data.jsonl", recs),
    "csv": lambda tmp, recs: write_delimited(tmp / "data.csv", recs, ","),
    "tsv": lambda tmp, recs: write_delimited(tmp / "data.tsv", recs, "\t"),
    "parquet": lambda tmp, recs: write_parquet(tmp / "data.parquet", recs),
    "disk": lambda tmp, recs: write_disk(tmp / "saved", recs),
}
EXPECTED_FILE_TYPE = {"json": "json", "json_object": "json", "jsonl": "jsonl", "csv": "csv", "tsv": "tsv",
                      "parquet": "parquet", "disk": "disk"}


def load(source, *, forced=None, mapping=None):
    """Read, detect and normalise: (table, detection, examples, report)."""
    report = Report()
    table = readers.read_source(str(source), report)
    detection = formats.detect(table.rows, table.file_type, forced=forced, mapping=mapping)
    examples = formats.normalize(table.rows, detection, report)
    return table, detection, examples, report


def as_tuples(example) -> list[tuple]:
    return [(m["role"], m["content"], m["train"]) for m in example.messages]


# ---------------------------------------------------------------------------------------------------------------
# Every format × every file type.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize("fmt", list(CASES))
def test_format_and_file_type(tmp_path, fmt, kind):
    records, expected, shown_columns = CASES[fmt]
    source = WRITERS[kind](tmp_path, records)

    table, detection, examples, report = load(source)

    assert table.file_type == EXPECTED_FILE_TYPE[kind]
    assert detection.format == fmt
    for column in shown_columns:
        assert column in detection.reason
    assert f"of the first {len(records)} rows" in detection.reason
    assert report.problems == []
    assert report.rows_read == len(records)
    assert [e.row for e in examples] == [1, 2]
    if fmt == "text":
        assert [e.text for e in examples] == expected
        assert all(e.messages is None for e in examples)
    else:
        assert [as_tuples(e) for e in examples] == expected


def test_csv_cells_hold_json_of_nested_formats(tmp_path):
    """Spreadsheets hold the turns as JSON text; commas, quotes and tabs inside the text survive."""
    conv = [{"from": "human", "value": 'Say "hi", please'}, {"from": "gpt", "value": "hi,\tfriend"}]
    path = write_delimited(tmp_path / "chat.csv", [{"conversations": conv, "system": "Be warm."}], ",")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "conversations,system"

    _, detection, examples, report = load(path)

    assert detection.format == "sharegpt"
    assert "'conversations'" in detection.reason and "'system'" in detection.reason
    assert report.problems == []
    assert as_tuples(examples[0]) == [("system", "Be warm.", False), ("user", 'Say "hi", please', False),
                                      ("assistant", "hi,\tfriend", True)]


# ---------------------------------------------------------------------------------------------------------------
# Format specifics.
# ---------------------------------------------------------------------------------------------------------------


def test_openai_list_of_text_parts_is_joined(tmp_path):
    rows = [{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Part one. "}, {"type": "text", "text": "Part two."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Answer."}]},
    ]}]
    for source in (write_jsonl(tmp_path / "parts.jsonl", rows), write_parquet(tmp_path / "parts.parquet", rows)):
        _, detection, examples, report = load(source)
        assert detection.format == "openai"
        assert report.problems == []
        assert as_tuples(examples[0]) == [("user", "Part one. Part two.", False), ("assistant", "Answer.", True)]


def test_openai_weight_zero_marks_an_assistant_turn_untrained(tmp_path):
    rows = [{"messages": [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A draft", "weight": 0},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "The answer", "weight": 1},
    ]}]
    _, _, examples, report = load(write_jsonl(tmp_path / "w.jsonl", rows))
    assert report.problems == []
    assert as_tuples(examples[0]) == [("user", "Q1", False), ("assistant", "A draft", False),
                                      ("user", "Q2", False), ("assistant", "The answer", True)]


def test_openai_developer_role_is_a_system_message(tmp_path):
    rows = [{"messages": [{"role": "developer", "content": "Rules."}, {"role": "user", "content": "Q"},
                          {"role": "assistant", "content": "A"}]}]
    _, _, examples, _ = load(write_jsonl(tmp_path / "d.jsonl", rows))
    assert as_tuples(examples[0])[0] == ("system", "Rules.", False)


def test_alpaca_system_and_history(tmp_path):
    rows = [{"instruction": "And now?", "input": "", "output": "Now B.", "system": "Be short.",
             "history": [["First?", "A."]]}]
    _, detection, examples, report = load(write_json(tmp_path / "h.json", rows))
    assert detection.format == "alpaca"
    assert "'history'" in detection.reason and "'system'" in detection.reason
    assert report.problems == []
    assert as_tuples(examples[0]) == [("system", "Be short.", False), ("user", "First?", False),
                                      ("assistant", "A.", True), ("user", "And now?", False),
                                      ("assistant", "Now B.", True)]


def test_sharegpt_conversation_alias_and_role_content_keys(tmp_path):
    rows = [{"conversation": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    _, detection, examples, report = load(write_jsonl(tmp_path / "c.jsonl", rows))
    assert detection.format == "sharegpt"
    assert "'conversation' as conversations" in detection.reason
    assert report.problems == []
    assert as_tuples(examples[0]) == [("user", "Hi", False), ("assistant", "Hello", True)]


def test_txt_is_raw_text_one_example_per_paragraph(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("First paragraph,\nstill the first.\n\nSecond paragraph.\n\n\n\nThird paragraph.", encoding="utf-8")
    table, detection, examples, report = load(path)
    assert table.file_type == "txt"
    assert detection.format == "text"
    assert "raw text" in detection.reason and "paragraph" in detection.reason
    assert report.problems == []
    assert [e.text for e in examples] == ["First paragraph,\nstill the first.", "Second paragraph.",
                                          "Third paragraph."]


def test_json_lines_saved_as_json_are_read_line_by_line(tmp_path):
    path = tmp_path / "actually_lines.json"
    write_jsonl(path, ALPACA_ROWS)
    table, detection, examples, report = load(path)
    assert detection.format == "alpaca"
    assert [r.line for r in table.rows] == [1, 2]
    assert [as_tuples(e) for e in examples] == ALPACA_MESSAGES


def test_json_object_with_several_arrays_is_ambiguous(tmp_path):
    path = write_json(tmp_path / "two.json", {"train": ALPACA_ROWS, "test": ALPACA_ROWS})
    with pytest.raises(DatasetError, match="several arrays") as err:
        load(path)
    assert "test" in err.value.message and "train" in err.value.message
    assert err.value.hint


def test_single_json_object_is_one_record(tmp_path):
    _, detection, examples, _ = load(write_json(tmp_path / "one.json", ALPACA_ROWS[1]))
    assert detection.format == "alpaca"
    assert [as_tuples(e) for e in examples] == [ALPACA_MESSAGES[1]]


# ---------------------------------------------------------------------------------------------------------------
# Overrides, mappings and aliases.
# ---------------------------------------------------------------------------------------------------------------


def test_format_override_wins_over_detection(tmp_path, tokenizer):
    from engine.heavy.data.pipeline import DataSettings, prepare

    rows = [{"text": "Body one.", "prompt": "P1", "completion": "C1"},
            {"text": "Body two.", "prompt": "P2", "completion": "C2"}]
    path = write_jsonl(tmp_path / "both.jsonl", rows)
    assert load(path)[1].format == "prompt_completion"

    _, detection, examples, _ = load(path, forced="text")
    assert detection.format == "text"
    assert "chosen by you" in detection.reason
    assert [e.text for e in examples] == ["Body one.", "Body two."]

    prepared = prepare(path, tokenizer, DataSettings(format="text", validation_share=0))
    assert prepared.detection.format == "text"
    assert prepared.report.rows_usable == 2


def test_format_override_that_does_not_fit_names_the_columns(tmp_path):
    path = write_jsonl(tmp_path / "pc.jsonl", PC_ROWS)
    with pytest.raises(DatasetError) as err:
        load(path, forced="alpaca")
    assert "instruction" in err.value.message and "output" in err.value.message
    assert "prompt" in err.value.message and "completion" in err.value.message
    assert "--columns" in err.value.hint


def test_unknown_forced_format(tmp_path):
    with pytest.raises(DatasetError, match="unknown format 'llama'") as err:
        load(write_jsonl(tmp_path / "a.jsonl", ALPACA_ROWS), forced="llama")
    assert "alpaca" in err.value.hint


def test_column_mapping(tmp_path, tokenizer):
    from engine.heavy.data.pipeline import DataSettings, prepare

    rows = [{"question": "Why is the sea salty?", "answer": "Minerals from rocks."},
            {"question": "Why is grass green?", "answer": "Chlorophyll."}]
    path = write_delimited(tmp_path / "qa.csv", rows, ",")
    mapping = {"instruction": "question", "output": "answer"}

    _, detection, examples, report = load(path, mapping=mapping)
    assert detection.format == "alpaca"
    assert detection.mapping == mapping
    assert "'question' as instruction" in detection.reason and "'answer' as output" in detection.reason
    assert report.problems == []
    assert as_tuples(examples[0]) == [("user", "Why is the sea salty?", False),
                                      ("assistant", "Minerals from rocks.", True)]

    prepared = prepare(path, tokenizer, DataSettings(columns=mapping, validation_share=0))
    assert prepared.detection.format == "alpaca"
    assert prepared.report.rows_usable == 2


@pytest.mark.parametrize(("prompt_col", "completion_col"),
                         [("question", "answer"), ("query", "response"), ("prompt", "answer")])
def test_aliases_are_detected_as_prompt_completion(tmp_path, prompt_col, completion_col):
    rows = [{prompt_col: "Is water wet?", completion_col: "Yes."}]
    _, detection, examples, report = load(write_jsonl(tmp_path / "alias.jsonl", rows))
    assert detection.format == "prompt_completion"
    assert detection.mapping == {"prompt": prompt_col, "completion": completion_col}
    assert f"'{prompt_col}'" in detection.reason and f"'{completion_col}'" in detection.reason
    assert report.problems == []
    assert as_tuples(examples[0]) == [("user", "Is water wet?", False), ("assistant", "Yes.", True)]


@pytest.mark.parametrize("alias", ["content", "document"])
def test_text_aliases(tmp_path, alias):
    _, detection, examples, _ = load(write_jsonl(tmp_path / "t.jsonl", [{alias: "Some prose."}]))
    assert detection.format == "text"
    assert f"'{alias}' as text" in detection.reason
    assert examples[0].text == "Some prose."


def test_majority_format_wins(tmp_path):
    """The format whose fields appear in most of the first rows wins; the others' rows are reported, not dropped."""
    rows = ALPACA_ROWS * 2 + [{"prompt": "p", "completion": "c"}]
    rows = [dict(r, instruction=f"{r.get('instruction')} {i}") if "instruction" in r else r for i, r in enumerate(rows)]
    _, detection, examples, report = load(write_jsonl(tmp_path / "mix.jsonl", rows))
    assert detection.format == "alpaca"
    assert "80%" in detection.reason
    assert len(examples) == 4
    assert report.skipped_rows == {5}
    assert {p.code for p in report.problems} == {"missing_field"}


def test_unrecognised_columns_raise_with_hint(tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"foo": "a", "bar": "b"}])
    with pytest.raises(DatasetError) as err:
        load(path)
    assert "could not recognise the format" in err.value.message
    assert "bar" in err.value.message and "foo" in err.value.message
    assert "--format" in err.value.hint and "--columns" in err.value.hint


def test_mapping_to_a_missing_column_is_a_dataset_error(tmp_path):
    path = write_json(tmp_path / "qa.json", [{"q": "Why?", "a": "Because."}])
    with pytest.raises(DatasetError):
        load(path, mapping={"instruction": "question", "output": "answer"})
