"""Typed settings shared by the run config and the dataset pipeline: documented fields and YAML-safe validation.

Every field carries a one-sentence doc in its metadata (the GUI's tooltips, ``--help`` texts and the reference in the
README come from it). Loading reports every problem at once with the field's dotted path, and keeps types: a typo is
an error, never a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import field
from typing import Any


def doc(default: Any, text: str):
    """A dataclass field with a default (a value, or a factory such as ``dict``) and its documentation."""
    if callable(default) and isinstance(default, type):
        return field(default_factory=default, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


def field_docs(cls, prefix: str = "") -> dict[str, str]:
    """Dotted field path -> doc, nested sections included."""
    docs = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            docs.update(field_docs(hints[f.name], f"{path}."))
        else:
            docs[path] = f.metadata.get("doc", "")
    return docs


def from_dict(cls, data: Any, problems: list[str], prefix: str = ""):
    """Build ``cls`` from plain data (YAML), appending "path: message" for each problem instead of raising."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping of fields, found {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{prefix}{key}: unknown field{hint}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        path, value, kind = f"{prefix}{f.name}", data[f.name], hints[f.name]
        if dataclasses.is_dataclass(kind):
            values[f.name] = from_dict(kind, value, problems, f"{path}.")
            continue
        checked = _check_type(value, kind)
        if checked is _BAD:
            problems.append(f"{path}: expected {_type_name(kind)}, found {value!r}")
        else:
            values[f.name] = checked
    return cls(**values)


def set_path(data: dict, dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``, creating the sections on the way."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


_BAD = object()


def _check_type(value: Any, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            checked = _check_type(value, option)
            if checked is not _BAD:
                return checked
        return _BAD
    if kind is type(None):
        return None if value is None else _BAD
    if kind is bool:
        return value if isinstance(value, bool) else _BAD
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if kind is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _BAD
    if kind is str:
        return value if isinstance(value, str) else _BAD
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        if not isinstance(value, dict):
            return _BAD
        return value if all(isinstance(k, key_type) and isinstance(v, value_type) for k, v in value.items()) else _BAD
    if origin is list:
        (item_type,) = typing.get_args(kind)
        if not isinstance(value, list):
            return _BAD
        return value if all(_check_type(v, item_type) is not _BAD for v in value) else _BAD
    return value


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if kind is type(None):
        return "nothing"
    if origin is dict:
        return "a mapping"
    if origin is list:
        return "a list"
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text"}.get(kind, str(kind))



