"""Dataset formats: detection (with the reason), column mapping, and normalisation to one shape.

Every format becomes an ``Example``: a list of chat messages (role, content, trained?) or, for continued
pre-training, raw text. Problems are reported per row and field; a row with an error is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine.heavy.data import tool_calls
from engine.heavy.data.problems import ERROR, WARNING, Problem, Report
from engine.heavy.data.readers import UNPARSEABLE, RawRow
from engine.light.dataset_formats import (
    ALPACA,
    FORMAT_DESCRIPTIONS,
    FORMATS,
    OPENAI,
    PROMPT_COMPLETION,
    REQUIRED,
    SHAREGPT,
    TEXT,
)
from engine.light import json_words
from engine.light.errors import DatasetError

# Mapping entries that name keys inside sharegpt turns rather than columns.
_KEY_OPTIONS = ("role_key", "content_key")

# Canonical field -> names accepted without an explicit mapping, best first.
FIELD_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    ALPACA: {
        "instruction": ("instruction",),
        "input": ("input",),
        "output": ("output",),
        "system": ("system",),
        "history": ("history",),
    },
    SHAREGPT: {"conversations": ("conversations", "conversation"), "tools": ("tools",), "system": ("system",)},
    OPENAI: {"messages": ("messages",), "tools": ("tools",)},
    PROMPT_COMPLETION: {
        "prompt": ("prompt", "question", "query"),
        "completion": ("completion", "answer", "response"),
    },
    TEXT: {"text": ("text", "content", "document")},
}
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


@dataclass
class Example:
    row: int
    messages: list[dict] | None = None  # {"role", "content", "train"}
    text: str | None = None
    tools: list | None = None

    def key(self) -> str:
        """Content identity, for finding exact duplicates."""
        return json.dumps([self.messages, self.text, self.tools], sort_keys=True, ensure_ascii=False)


@dataclass
class Detection:
    format: str
    reason: str
    mapping: dict[str, str] = field(default_factory=dict)  # canonical field -> column in the file

    def to_dict(self) -> dict:
        return {"format": self.format, "reason": self.reason, "mapping": dict(self.mapping)}


def detect(rows: list[RawRow], file_type: str, *, forced: str | None = None, mapping: dict | None = None) -> Detection:
    """Pick the format from the columns of the first rows; ``forced`` and ``mapping`` override the guess."""
    mapping = dict(mapping or {})
    sample = [r.value for r in rows[:200] if isinstance(r.value, dict)]
    columns: dict[str, int] = {}
    for record in sample:
        for key in record:
            columns[key] = columns.get(key, 0) + 1
    absent = {canon: col for canon, col in mapping.items() if col not in columns and canon not in _KEY_OPTIONS}
    if absent and sample:
        canon, col = next(iter(absent.items()))
        raise DatasetError(
            f"the column '{col}' (mapped to {canon}) is not in the file",
            hint=f"the file has the columns: {', '.join(columns) or '(none)'}",
            columns=list(columns),
        )
    if forced:
        if forced not in FORMATS:
            raise DatasetError(f"unknown format '{forced}'", hint=f"choose one of: {', '.join(FORMATS)}")
        resolved = _resolve_mapping(forced, columns, mapping)
        missing = [f for f in REQUIRED[forced] if f not in resolved]
        if missing and not (forced == TEXT and file_type == "txt"):
            raise DatasetError(
                f"format '{forced}' needs the field(s) {', '.join(missing)}, "
                f"but the file has columns: {', '.join(columns) or '(none)'}",
                hint="map your column names, e.g. --columns " + "=".join([missing[0], "your_column"]),
                columns=list(columns),
            )
        return Detection(forced, f"chosen by you ({FORMAT_DESCRIPTIONS[forced]})", resolved)
    if file_type == "txt":
        return Detection(TEXT, "a .txt file is read as raw text, one example per paragraph", {"text": "text"})
    if not sample:
        raise DatasetError(
            "no record with named fields was found",
            hint="each example must be an object such as {\"instruction\": …, \"output\": …}",
        )
    scores = []
    for fmt in (OPENAI, SHAREGPT, ALPACA, PROMPT_COMPLETION, TEXT):
        resolved = _resolve_mapping(fmt, columns, mapping)
        if all(f in resolved for f in REQUIRED[fmt]):
            share = min(columns[resolved[f]] for f in REQUIRED[fmt]) / len(sample)
            scores.append((share, fmt, resolved))
    if not scores:
        raise DatasetError(
            f"could not recognise the format from the columns: {', '.join(sorted(columns))}",
            hint="choose the format and map your columns, e.g. --format alpaca --columns instruction=question "
            "output=answer",
            columns=list(columns),
        )
    share, fmt, resolved = max(scores, key=lambda s: s[0])  # stable: the first format wins a tie
    shown = ", ".join(f"'{col}'" if col == canon else f"'{col}' as {canon}" for canon, col in resolved.items())
    reason = f"{FORMAT_DESCRIPTIONS[fmt]}: found {shown} in {share:.0%} of the first {len(sample)} rows"
    return Detection(fmt, reason, resolved)


def _resolve_mapping(fmt: str, columns: dict[str, int], mapping: dict[str, str]) -> dict[str, str]:
    resolved = {}
    for canon, aliases in FIELD_ALIASES[fmt].items():
        if canon in mapping:
            resolved[canon] = mapping[canon]
            continue
        found = next((a for a in aliases if a in columns), None)
        if found:
            resolved[canon] = found
    return resolved


def normalize(rows: Iterable[RawRow], detection: Detection, report: Report) -> list[Example]:
    """Turn rows into Examples, adding one Problem per issue found. Rows with an error are left out."""
    convert = {ALPACA: _alpaca, SHAREGPT: _sharegpt, OPENAI: _openai, PROMPT_COMPLETION: _prompt_completion,
               TEXT: _text}[detection.format]
    examples = []
    for raw in rows:
        report.rows_read += 1
        if raw.value is UNPARSEABLE:  # already reported by the reader
            continue
        checker = _RowChecker(raw, report)
        if not isinstance(raw.value, dict):
            checker.error("", "not_a_record", f"expected an object with fields, found {_kind(raw.value)}")
            continue
        example = convert(raw.value, detection.mapping, checker)
        if example is not None and not checker.failed and not _encodable(example):
            checker.error("", "bad_text", "the text holds an invalid character (a lone surrogate escape such as "
                                          "\\ud800); fix or remove it")
        if example is not None and not checker.failed:
            example.row = raw.row
            examples.append(example)
    return examples


class _RowChecker:
    def __init__(self, raw: RawRow, report: Report):
        self.raw, self.report, self.failed = raw, report, False

    def error(self, field_name: str, code: str, message: str) -> None:
        self.failed = True
        self.report.add(Problem(self.raw.row, field_name, code, message, ERROR, line=self.raw.line))

    def warn(self, field_name: str, code: str, message: str) -> None:
        self.report.add(Problem(self.raw.row, field_name, code, message, WARNING, line=self.raw.line))

    def text(self, record: dict, column: str | None, *, required: bool, empty_code: str = "empty_field") -> str | None:
        """A text field; numbers are accepted as text with a warning, anything else is an error."""
        if column is None or column not in record or record[column] is None:
            if required:
                self.error(column or "", "missing_field", "the field is missing")
            return None
        value = record[column]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(column, "non_text", f"expected text, found {_kind(value)}")
            return None
        if not isinstance(value, str):
            if value != value:  # NaN: an empty cell in CSV/Parquet
                value = ""
            else:
                self.warn(column, "number_as_text", f"the number {value!r} is used as text")
                value = str(value)
        if required and not value.strip():
            self.error(column, empty_code, "the field is empty")
            return None
        return value

    def sequence(self, record: dict, column: str) -> list | None:
        """A list field; CSV cells holding a JSON array are accepted too."""
        if column not in record or record[column] is None:
            self.error(column, "missing_field", "the field is missing")
            return None
        value = record[column]
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                detail = json_words.in_words(exc) if isinstance(exc, json.JSONDecodeError) else "nested too deeply or too large"
                self.error(column, "malformed_json", f"the cell holds invalid JSON ({detail})")
                return None
        if not isinstance(value, list):
            self.error(column, "wrong_type", f"expected a list of turns, found {_kind(value)}")
            return None
        if not value:
            self.error(column, "empty_field", "the list of turns is empty")
            return None
        return value


def _encodable(example: Example) -> bool:
    try:
        example.key().encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _msg(role: str, content: str, train: bool | None = None) -> dict:
    return {"role": role, "content": content, "train": role == "assistant" if train is None else train}


def _call_msg(calls: list[dict], content: str = "", train: bool = True) -> dict:
    """An assistant turn that calls functions (trained on, like any reply, unless the file says otherwise)."""
    return {"role": "assistant", "content": content, "tool_calls": calls, "train": train}


def _calls(value: Any, where: str, check: _RowChecker) -> list[dict] | None:
    try:
        return tool_calls.parse(value)
    except tool_calls.CallError as exc:
        check.error(where, "bad_tool_call", str(exc))
        return None


def _alpaca(record: dict, mapping: dict, check: _RowChecker) -> Example | None:
    instruction = check.text(record, mapping.get("instruction"), required=True)
    extra = check.text(record, mapping.get("input"), required=False)
    output = check.text(record, mapping.get("output"), required=True, empty_code="empty_assistant")
    system = check.text(record, mapping.get("system"), required=False)
    if check.failed:
        return None
    messages = [_msg("system", system)] if system and system.strip() else []
    history_col = mapping.get("history")
    if history_col and record.get(history_col):
        history = check.sequence(record, history_col)
        for i, pair in enumerate(history or []):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                check.error(history_col, "wrong_type", f"history item {i + 1} must be a [question, answer] pair")
                return None
            messages += [_msg("user", pair[0]), _msg("assistant", pair[1])]
    user = instruction if not (extra and extra.strip()) else f"{instruction}\n\n{extra}"
    messages += [_msg("user", user), _msg("assistant", output)]
    return Example(0, messages=messages)


def _prompt_completion(record: dict, mapping: dict, check: _RowChecker) -> Example | None:
    prompt = check.text(record, mapping.get("prompt"), required=True)
    completion = check.text(record, mapping.get("completion"), required=True, empty_code="empty_assistant")
    if check.failed:
        return None
    return Example(0, messages=[_msg("user", prompt), _msg("assistant", completion)])


def _text(record: dict, mapping: dict, check: _RowChecker) -> Example | None:
    text = check.text(record, mapping.get("text"), required=True)
    return None if check.failed else Example(0, text=text)


def _sharegpt(record: dict, mapping: dict, check: _RowChecker) -> Example | None:
    column = mapping["conversations"]
    turns = check.sequence(record, column)
    if turns is None:
        return None
    role_key = mapping.get("role_key", "from")
    content_key = mapping.get("content_key", "value")
    messages = []
    system = check.text(record, mapping.get("system"), required=False)
    if system and system.strip():
        messages.append(_msg("system", system))
    for i, turn in enumerate(turns, start=1):
        where = f"{column}[{i}]"
        if not isinstance(turn, dict):
            check.error(where, "wrong_type", f"expected a turn object, found {_kind(turn)}")
            return None
        tag = turn.get(role_key, turn.get("role"))
        role = SHAREGPT_ROLES.get(str(tag).lower()) if tag is not None else None
        if role is None:
            check.error(where, "unknown_role", f"unknown speaker {tag!r}; expected one of {', '.join(SHAREGPT_ROLES)}")
            return None
        content = turn.get(content_key, turn.get("content"))
        if str(tag).lower() == "function_call":
            calls = _calls(content, f"{where}.{content_key}", check)
            if calls is None:
                return None
            messages.append(_call_msg(calls))
            continue
        if not isinstance(content, str):
            check.error(f"{where}.{content_key}", "non_text", f"expected text, found {_kind(content)}")
            return None
        messages.append(_msg(role, content))
    tools = _tools(record, mapping, check)
    return _finish_chat(messages, column, check, tools)


def _openai(record: dict, mapping: dict, check: _RowChecker) -> Example | None:
    column = mapping["messages"]
    turns = check.sequence(record, column)
    if turns is None:
        return None
    messages = []
    for i, turn in enumerate(turns, start=1):
        where = f"{column}[{i}]"
        if not isinstance(turn, dict):
            check.error(where, "wrong_type", f"expected a message object, found {_kind(turn)}")
            return None
        role = OPENAI_ROLES.get(str(turn.get("role", "")).lower())
        if role is None:
            check.error(f"{where}.role", "unknown_role",
                        f"unknown role {turn.get('role')!r}; expected one of {', '.join(OPENAI_ROLES)}")
            return None
        content = _openai_content(turn.get("content"), f"{where}.content", check)
        if role == "assistant" and turn.get("tool_calls"):
            calls = _calls(turn["tool_calls"], f"{where}.tool_calls", check)
            if calls is None:
                return None
            messages.append(_call_msg(calls, content or "", turn.get("weight", 1) != 0))
            continue
        if content is None:
            if not check.failed:
                check.error(f"{where}.content", "missing_field", "the message has no content")
            return None
        train = None if role != "assistant" else turn.get("weight", 1) != 0  # OpenAI's weight: 0 = don't train
        message = _msg(role, content, train)
        if role == "tool" and isinstance(turn.get("tool_call_id"), str):
            message["tool_call_id"] = turn["tool_call_id"]
        messages.append(message)
    return _finish_chat(messages, column, check, _tools(record, mapping, check))


def _openai_content(content: Any, where: str, check: _RowChecker) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else _kind(part)
                check.error(where, "non_text", f"content part of type {kind!r} is not text; only text is supported")
                return None
        return "".join(texts)
    check.error(where, "non_text", f"expected text or a list of text parts, found {_kind(content)}")
    return None


def _tools(record: dict, mapping: dict, check: _RowChecker) -> list | None:
    column = mapping.get("tools")
    value = record.get(column) if column else None
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            detail = json_words.in_words(exc) if isinstance(exc, json.JSONDecodeError) else "nested too deeply or too large"
            check.error(column, "malformed_json", f"tools must be JSON ({detail})")
            return None
    return value if isinstance(value, list) else [value]


# Which role may follow which; "start" is the state before the first non-system turn.
_NEXT = {
    "start": {"user"},
    "user": {"assistant"},
    "assistant": {"user", "tool"},
    "tool": {"assistant", "tool"},
}


def _finish_chat(messages: list[dict], column: str, check: _RowChecker, tools: list | None) -> Example | None:
    state = "start"
    for i, message in enumerate(messages, start=1):
        role = message["role"]
        if role == "system":
            if i != 1:
                check.error(column, "roles_order", f"turn {i}: a system message may only come first")
                return None
            continue
        if role not in _NEXT[state]:
            expected = " or ".join(sorted(_NEXT[state]))
            check.error(column, "roles_order", f"turn {i}: '{role}' cannot follow '{state}'; expected {expected}")
            return None
        if role == "assistant" and not message["content"].strip() and not message.get("tool_calls"):
            check.error(column, "empty_assistant", f"turn {i}: the assistant's reply is empty")
            return None
        state = role
    if state != "assistant":
        check.error(column, "roles_order", "the conversation does not end with an assistant reply")
        return None
    if not any(m["train"] for m in messages):
        check.error(column, "nothing_to_train", "no assistant turn is marked for training")
        return None
    return Example(0, messages=messages, tools=tools)
