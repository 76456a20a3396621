"""Validation: every problem names its row (and line for JSONL/CSV), field and code; bad rows are counted, never
silently dropped; file-level problems raise DatasetError with a location and a hint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from engine.heavy.data.pipeline import DataSettings, prepare
from engine.heavy.data.problems import ERROR, WARNING
from engine.light.errors import DatasetError

GOOD = {"instruction": "Say hello.", "output": "Hello!"}


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def check(path, tokenizer, **settings):
    settings.setdefault("validation_share", 0)
    return prepare(path, tokenizer, DataSettings(**settings), use_cache=False)


def problems_of(prepared, code: str) -> list:
    return [p for p in prepared.report.problems if p.code == code]


def one_problem(prepared, code: str):
    found = problems_of(prepared, code)
    assert len(found) == 1, [str(p) for p in prepared.report.problems]
    return found[0]


def assert_accounted(prepared) -> None:
    report = prepared.report
    assert report.rows_read == report.rows_usable + report.rows_skipped


# ---------------------------------------------------------------------------------------------------------------
# Row-level problems.
# ---------------------------------------------------------------------------------------------------------------


def test_malformed_json_line(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, '{"instruction": "Hi", "output": }', {**GOOD, "output": "Hey"}])
    prepared = check(path, tokenizer)
    problem = one_problem(prepared, "malformed_json")
    assert (problem.row, problem.line, problem.field, problem.severity) == (2, 2, "", ERROR)
    assert "not valid JSON" in problem.message
    assert prepared.report.rows_read == 3 and prepared.report.rows_usable == 2
    assert prepared.report.skipped_rows == {2}
    assert_accounted(prepared)


def test_line_numbers_skip_blank_lines_in_jsonl(tmp_path, tokenizer):
    path = tmp_path / "gaps.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n\n" + json.dumps({"instruction": "x"}) + "\n", encoding="utf-8")
    problem = one_problem(check(path, tokenizer), "missing_field")
    assert (problem.row, problem.line, problem.field) == (2, 4, "output")
    assert "row 2 (line 4), field 'output'" in str(problem)


def test_missing_field(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"instruction": "No answer here"}])
    prepared = check(path, tokenizer)
    problem = one_problem(prepared, "missing_field")
    assert (problem.row, problem.line, problem.field, problem.severity) == (2, 2, "output", ERROR)
    assert prepared.report.rows_usable == 1
    assert_accounted(prepared)


def test_null_value_is_a_missing_field(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"instruction": None, "output": "x"}])
    problem = one_problem(check(path, tokenizer), "missing_field")
    assert (problem.row, problem.field) == (2, "instruction")


def test_empty_field_and_empty_assistant(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "  ", "output": "x"}, {"instruction": "Q", "output": ""},
                                              GOOD])
    prepared = check(path, tokenizer)
    empty = one_problem(prepared, "empty_field")
    assert (empty.row, empty.line, empty.field) == (1, 1, "instruction")
    reply = one_problem(prepared, "empty_assistant")
    assert (reply.row, reply.line, reply.field) == (2, 2, "output")
    assert prepared.report.skipped_rows == {1, 2}
    assert_accounted(prepared)


def test_empty_assistant_turn_in_a_conversation(tmp_path, tokenizer):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " \n"}]},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    problem = one_problem(prepared, "empty_assistant")
    assert (problem.row, problem.line, problem.field) == (1, 1, "messages")
    assert "turn 2" in problem.message
    assert_accounted(prepared)


@pytest.mark.parametrize(("roles", "message"), [
    (["user", "user"], "'user' cannot follow 'user'"),
    (["assistant", "user"], "'assistant' cannot follow 'start'"),
    (["user", "assistant", "system", "user", "assistant"], "system message may only come first"),
    (["user", "assistant", "user"], "does not end with an assistant reply"),
])
def test_roles_out_of_order(tmp_path, tokenizer, roles, message):
    rows = [{"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]},
            {"messages": [{"role": r, "content": f"turn {i}"} for i, r in enumerate(roles)]}]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    problem = one_problem(prepared, "roles_order")
    assert (problem.row, problem.line, problem.field, problem.severity) == (2, 2, "messages", ERROR)
    assert message in problem.message
    assert prepared.report.rows_usable == 1
    assert_accounted(prepared)


def test_unknown_role(tmp_path, tokenizer):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "robot", "content": "Beep"}]},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    problem = one_problem(prepared, "unknown_role")
    assert (problem.row, problem.line, problem.field) == (1, 1, "messages[2].role")
    assert "'robot'" in problem.message

    sharegpt = [{"conversations": [{"from": "alien", "value": "Hi"}, {"from": "gpt", "value": "Hey"}]},
                {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hey"}]}]
    problem = one_problem(check(write_jsonl(tmp_path / "s.jsonl", sharegpt), tokenizer), "unknown_role")
    assert (problem.row, problem.line, problem.field) == (1, 1, "conversations[1]")
    assert "'alien'" in problem.message


def test_non_text_content(tmp_path, tokenizer):
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                   {"type": "image_url", "image_url": {"url": "x.png"}}]},
                      {"role": "assistant", "content": "A cat."}]},
        {"messages": [{"role": "user", "content": {"text": "Hi"}}, {"role": "assistant", "content": "Hey"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]},
    ]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    image, obj = problems_of(prepared, "non_text")
    assert (image.row, image.line, image.field) == (1, 1, "messages[1].content")
    assert "'image_url'" in image.message
    assert (obj.row, obj.line, obj.field) == (2, 2, "messages[1].content")
    assert "an object" in obj.message
    assert prepared.report.rows_usable == 1
    assert_accounted(prepared)


def test_dict_where_text_expected_in_alpaca_and_sharegpt(tmp_path, tokenizer):
    prepared = check(write_jsonl(tmp_path / "a.jsonl", [{"instruction": {"en": "Hi"}, "output": "x"}, GOOD]),
                     tokenizer)
    problem = one_problem(prepared, "non_text")
    assert (problem.row, problem.field, problem.severity) == (1, "instruction", ERROR)

    rows = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ["a", "b"]}]},
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "ok"}]}]
    problem = one_problem(check(write_jsonl(tmp_path / "s.jsonl", rows), tokenizer), "non_text")
    assert (problem.row, problem.field) == (1, "conversations[2].value")
    assert "a list" in problem.message


def test_number_used_as_text_is_a_warning_and_the_row_is_kept(tmp_path, tokenizer):
    rows = [{"instruction": "6 times 7?", "output": 42}, {"instruction": "Half?", "output": 0.5},
            {"instruction": "Is it?", "output": True}]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    warnings = problems_of(prepared, "number_as_text")
    assert [(p.row, p.line, p.field, p.severity) for p in warnings] == [(1, 1, "output", WARNING),
                                                                       (2, 2, "output", WARNING)]
    assert one_problem(prepared, "non_text").row == 3  # true/false is not a number
    assert prepared.report.rows_usable == 2
    assert prepared.report.skipped_rows == {3}
    trained = [seg for p in prepared.preview for seg, on in p.segments if on]
    assert trained == ["42<|im_end|>", "0.5<|im_end|>"]


def test_csv_problems_report_the_file_line(tmp_path, tokenizer):
    rows = [{"instruction": "A?", "output": "a"}, {"instruction": "B?", "output": ""},
            {"instruction": "", "output": "c"}]
    prepared = check(write_csv(tmp_path / "d.csv", rows), tokenizer)
    located = sorted((p.row, p.line, p.field) for p in prepared.report.problems)
    assert located == [(2, 3, "output"), (3, 4, "instruction")]
    assert prepared.report.rows_usable == 1
    assert_accounted(prepared)


@pytest.mark.parametrize("value", ["a plain string", [1, 2], 7])
def test_not_a_record(tmp_path, tokenizer, value):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, value]), encoding="utf-8")
    prepared = check(path, tokenizer)
    problem = one_problem(prepared, "not_a_record")
    assert (problem.row, problem.line, problem.field, problem.severity) == (2, None, "", ERROR)
    assert prepared.report.rows_usable == 1
    assert_accounted(prepared)


def test_not_a_record_in_jsonl_has_a_line(tmp_path, tokenizer):
    prepared = check(write_jsonl(tmp_path / "d.jsonl", [GOOD, "[1, 2]"]), tokenizer)
    problem = one_problem(prepared, "not_a_record")
    assert (problem.row, problem.line) == (2, 2)


def test_too_long_is_a_warning_and_the_row_is_truncated(tmp_path, tokenizer):
    long_reply = " ".join(f"word{i}" for i in range(200))
    rows = [{"instruction": "Count.", "output": long_reply}, GOOD]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer, cutoff=48)
    problem = one_problem(prepared, "too_long")
    assert (problem.row, problem.severity) == (1, WARNING)
    assert "cutoff of 48" in problem.message
    assert prepared.report.rows_usable == 2
    assert prepared.report.rows_skipped == 0
    train, _ = prepared.splits()
    assert len(train[0]["input_ids"]) == 48
    assert len(train[1]["input_ids"]) < 48
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Count."}, {"role": "assistant", "content": long_reply}], tokenize=False)
    full_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert problem.message.startswith(f"{len(full_ids)} tokens")
    assert train[0]["input_ids"] == full_ids[:48]
    assert prepared.stats.percentiles["max"] == len(full_ids)
    assert prepared.preview[0].truncated and not prepared.preview[1].truncated
    assert prepared.stats.truncated_rows == 1


def test_truncation_that_leaves_nothing_to_train_skips_the_row(tmp_path, tokenizer):
    rows = [{"instruction": "word " * 100, "output": "short"}, GOOD]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer, cutoff=48)
    assert one_problem(prepared, "too_long").row == 1
    gone = one_problem(prepared, "nothing_to_train")
    assert (gone.row, gone.severity) == (1, ERROR)
    assert prepared.report.skipped_rows == {1}
    assert prepared.report.rows_usable == 1
    assert_accounted(prepared)


def test_exact_duplicates_are_dropped_by_default(tmp_path, tokenizer):
    rows = [GOOD, {"instruction": "Other", "output": "x"}, GOOD, GOOD]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    dups = problems_of(prepared, "duplicate")
    assert [(p.row, p.severity) for p in dups] == [(3, ERROR), (4, ERROR)]
    assert all("duplicate of row 1" in p.message and "left out" in p.message for p in dups)
    assert prepared.report.rows_usable == 2
    assert prepared.report.skipped_rows == {3, 4}
    assert_accounted(prepared)


def test_duplicates_are_kept_with_drop_duplicates_false(tmp_path, tokenizer):
    rows = [GOOD, {"instruction": "Other", "output": "x"}, GOOD]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer, drop_duplicates=False)
    dup = one_problem(prepared, "duplicate")
    assert (dup.row, dup.severity) == (3, WARNING)
    assert "kept" in dup.message
    assert prepared.report.rows_usable == 3
    assert prepared.report.rows_skipped == 0
    train, _ = prepared.splits()
    assert train.num_rows == 3


def test_every_bad_row_is_counted(tmp_path, tokenizer):
    """A mix of every kind of error: each bad row is skipped and counted exactly once."""
    rows = [
        GOOD,
        "{not json",
        {"instruction": "x"},
        {"instruction": "", "output": "y"},
        {"instruction": {"a": 1}, "output": {"b": 2}},  # two problems, one row
        "42",
        GOOD,
        {"instruction": "Fine", "output": "Also fine"},
    ]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    report = prepared.report
    assert report.rows_read == 8
    assert report.skipped_rows == {2, 3, 4, 5, 6, 7}
    assert report.rows_usable == 2
    assert report.counts["non_text"] == 2
    assert report.errors == 7
    assert_accounted(prepared)
    assert "8 rows read; 2 usable; 6 skipped" in report.summary()


# ---------------------------------------------------------------------------------------------------------------
# Zero usable rows.
# ---------------------------------------------------------------------------------------------------------------


def test_zero_usable_rows(tmp_path, tokenizer):
    rows = [{"instruction": "a", "output": ""}, {"instruction": "b"}]
    prepared = check(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    assert prepared.usable is False
    assert prepared.report.rows_usable == 0 and prepared.report.rows_skipped == 2
    assert_accounted(prepared)
    assert prepared.stats.rows == 0
    with pytest.raises(DatasetError, match="no usable rows") as err:
        prepared.require_usable()
    assert err.value.where == str(tmp_path / "d.jsonl")
    assert err.value.hint


def test_usable_dataset_passes_require_usable(tmp_path, tokenizer):
    prepared = check(write_jsonl(tmp_path / "d.jsonl", [GOOD]), tokenizer)
    assert prepared.usable
    prepared.require_usable()


# ---------------------------------------------------------------------------------------------------------------
# File-level errors.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.json", "empty.jsonl", "empty.csv", "empty.txt", "empty.parquet"])
def test_empty_file(tmp_path, tokenizer, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="the file is empty") as err:
        check(path, tokenizer)
    assert err.value.where == str(path)
    assert err.value.hint


@pytest.mark.parametrize("name", ["latin1.json", "latin1.jsonl"])
def test_not_utf8_names_the_line(tmp_path, tokenizer, name):
    path = tmp_path / name
    path.write_bytes(b'{"instruction": "Coffee?", "output": "ok"}\n{"instruction": "caf\xe9", "output": "x"}\n')
    with pytest.raises(DatasetError) as err:
        check(path, tokenizer)
    assert "not UTF-8" in err.value.message
    assert "0xe9" in err.value.message and "line 2" in err.value.message
    assert "UTF-8" in err.value.hint


def test_not_utf8_csv_is_a_dataset_error(tmp_path, tokenizer):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"instruction,output\ncaf\xe9,x\n")
    with pytest.raises(DatasetError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)") as err:
        check(path, tokenizer)
    assert "UTF-8" in err.value.hint


@pytest.mark.parametrize("name", ["bom.json", "bom.jsonl", "bom.csv"])
def test_utf8_bom_is_accepted(tmp_path, tokenizer, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        body = "instruction,output\nSay hello.,Hello!\n"
    elif name.endswith(".jsonl"):
        body = json.dumps(GOOD) + "\n"
    else:
        body = json.dumps([GOOD])
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    prepared = check(path, tokenizer)
    assert prepared.detection.format == "alpaca"
    assert prepared.report.problems == []
    assert prepared.report.rows_usable == 1


def test_invalid_json_names_line_and_column(tmp_path, tokenizer):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n',
                    encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        check(path, tokenizer)
    assert "not valid JSON at line 3, column 23: a comma is missing between two items" in err.value.message
    assert err.value.where == str(path)
    assert ".jsonl" in err.value.hint


def test_json_holding_a_scalar(tmp_path, tokenizer):
    path = tmp_path / "scalar.json"
    path.write_text('"just text"', encoding="utf-8")
    with pytest.raises(DatasetError, match="expected an array of records"):
        check(path, tokenizer)


def test_json_without_records(tmp_path, tokenizer):
    path = tmp_path / "nothing.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DatasetError, match="no record with named fields"):
        check(path, tokenizer)


@pytest.mark.parametrize("name", ["data.yaml", "data.xlsx", "DATA"])
def test_unsupported_extension(tmp_path, tokenizer, name):
    path = tmp_path / name
    path.write_text("instruction: hi\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="unsupported file type") as err:
        check(path, tokenizer)
    assert (path.suffix or "(none)") in err.value.message
    assert ".jsonl" in err.value.hint and ".csv" in err.value.hint


def test_missing_path(tmp_path, tokenizer):
    path = tmp_path / "nowhere" / "data.jsonl"
    with pytest.raises(DatasetError, match="no such file or folder") as err:
        check(path, tokenizer)
    assert err.value.where == str(path)
    assert "check the path" in err.value.hint


def test_folder_that_is_not_a_saved_dataset(tmp_path, tokenizer):
    folder = tmp_path / "random"
    folder.mkdir()
    (folder / "notes.md").write_text("hi", encoding="utf-8")
    with pytest.raises(DatasetError, match="save_to_disk"):
        check(folder, tokenizer)


def test_invalid_settings_are_rejected(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    with pytest.raises(DatasetError) as err:
        prepare(path, tokenizer, DataSettings(cutoff=4, train_on="everything", validation_share=0.9))
    for field in ("cutoff", "train_on", "validation_share"):
        assert field in err.value.message


# ---------------------------------------------------------------------------------------------------------------
# Regression tests for bugs found while writing these tests.
# ---------------------------------------------------------------------------------------------------------------


def test_jsonl_with_unicode_line_separator_inside_a_string(tmp_path, tokenizer):
    record = {"instruction": "Join these\u2028lines", "output": "Done\u0085ok"}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    prepared = check(path, tokenizer)
    assert prepared.report.problems == []
    assert prepared.report.rows_read == 2 and prepared.report.rows_usable == 2


def test_csv_line_numbers_with_multiline_cells(tmp_path, tokenizer):
    rows = [{"instruction": "Two lines?", "output": "first\nsecond"}, {"instruction": "Empty?", "output": ""}]
    path = write_csv(tmp_path / "d.csv", rows)
    assert path.read_text(encoding="utf-8").splitlines()[3] == "Empty?,"
    problem = one_problem(check(path, tokenizer), "empty_assistant")
    assert (problem.row, problem.line) == (2, 4)


@pytest.mark.parametrize(("cells", "expected"), [
    (["007", "42"], ["007", "42"]),  # read as integers: the reply becomes "7"
    (["1.50", "2.25"], ["1.50", "2.25"]),  # read as floats: "1.5"
    (["True", "False"], ["True", "False"]),  # read as booleans: non_text error, rows skipped
    (["None", "Yes"], ["None", "Yes"]),  # pandas' NA strings become null: missing_field, row skipped
])
def test_csv_cells_are_kept_as_written(tmp_path, tokenizer, cells, expected):
    rows = [{"instruction": f"Question {i}?", "output": cell} for i, cell in enumerate(cells)]
    prepared = check(write_csv(tmp_path / "d.csv", rows), tokenizer)
    trained = [seg.removesuffix("<|im_end|>") for p in prepared.preview for seg, on in p.segments if on]
    assert trained == expected
    assert prepared.report.problems == []


def test_duplicate_in_jsonl_names_its_line(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    dup = one_problem(check(path, tokenizer), "duplicate")
    assert (dup.row, dup.line) == (2, 3)


def test_jsonl_where_every_line_is_malformed_says_so(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text("{'instruction': 'single quotes'}\n{'instruction': 'again'}\n", encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        check(path, tokenizer)
    assert "JSON" in err.value.message and "line 1" in str(err.value)
