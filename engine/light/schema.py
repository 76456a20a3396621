"""The machinery behind the run config's one schema: every setting declared once, with everything its users need.

A setting is a dataclass field made by ``setting()``: its type (the annotation), default, documentation, label, bounds
or choices, where the form shows it, and whether the memory estimate depends on it. From that one declaration come
the YAML round trip, validation (every problem at once, with the dotted path, types kept), ``--set`` overrides, the
GUI's form widgets and tooltips, the documented ``llamadesk-engine config`` output and the estimator's list of inputs.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

BASIC, ADVANCED, RUN = "basic", "advanced", "run"  # where the Train page's form shows a setting


def setting(default: Any, doc: str, *, label: str = "", low: float | None = None, high: float | None = None,
            above: float | None = None, below: float | None = None, choices: tuple | None = None,
            advice: str = "", unit: str = "", group: str = ADVANCED, memory: bool = False, resume_safe: bool = True,
            zero: str = ""):
    """A documented field of a settings section.

    ``low``/``high`` are inclusive bounds, ``above``/``below`` exclusive ones; ``advice`` replaces the generic "use
    LOW to HIGH" of an out-of-range message. ``memory``: the GPU memory estimate depends on it. ``resume_safe``: a
    stopped run may resume with another value (the rank and the optimizer may not: the checkpoint depends on them).
    ``zero``: what 0 means, for a number where 0 switches something off ("by epochs"); forms show it instead of 0.
    A default that is a type (``list``, ``dict``) becomes a factory."""
    metadata = {"doc": doc, "label": label, "low": low, "high": high, "above": above, "below": below,
                "choices": choices, "advice": advice, "unit": unit, "group": group, "memory": memory,
                "resume_safe": resume_safe, "zero": zero}
    if isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Setting:
    """One leaf setting of a schema, by its dotted path."""

    path: str
    type: Any
    default: Any
    doc: str
    label: str
    low: float | None
    high: float | None
    above: float | None
    below: float | None
    choices: tuple | None
    advice: str
    unit: str
    group: str
    memory: bool
    resume_safe: bool
    zero: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def base_type(self) -> Any:
        """The type without ``| None``: bool, int, float, str, list or dict."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        kind = args[0] if typing.get_origin(self.type) in (typing.Union, types.UnionType) and len(args) == 1 \
            else self.type
        return typing.get_origin(kind) or kind

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.type)

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type (out of bounds, not a choice), or None."""
        if value is None:
            return None
        if self.choices is not None and isinstance(value, list):  # a list of choices: each item is one of them
            wrong = [item for item in value if item not in self.choices]
            return (f"'{wrong[0]}' is not one of {', '.join(str(c) for c in self.choices)}") if wrong else None
        if self.choices is not None and value not in self.choices:
            return f"'{value}' is not one of {', '.join(str(c) for c in self.choices)}"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        low_ok = (self.low is None or value >= self.low) and (self.above is None or value > self.above)
        high_ok = (self.high is None or value <= self.high) and (self.below is None or value < self.below)
        if low_ok and high_ok:
            return None
        top = self.high if self.high is not None else self.below
        if top is None:
            return f"must be at least {self.low:g}, not {value}"
        bottom = self.low if self.low is not None else self.above
        unit = f" {self.unit}" if self.unit else ""
        return f"{value} is out of range; " + (self.advice or f"use {bottom:g} to {top:g}{unit}")


def settings_of(cls, prefix: str = "") -> list[Setting]:
    """Every leaf setting of a (nested) settings dataclass, in declaration order."""
    found = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path, kind = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(kind):
            found += settings_of(kind, f"{path}.")
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        meta = f.metadata
        found.append(Setting(path, kind, default, meta.get("doc", ""), meta.get("label") or _label(f.name),
                             meta.get("low"), meta.get("high"), meta.get("above"), meta.get("below"),
                             meta.get("choices"), meta.get("advice", ""), meta.get("unit", ""),
                             meta.get("group", ADVANCED), meta.get("memory", False), meta.get("resume_safe", True),
                             meta.get("zero", "")))
    return found


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def from_dict(cls, data: Any, problems: list[str], prefix: str = ""):
    """Build ``cls`` from plain data (YAML), appending "path: message" for each problem instead of raising.
    Types are checked: a typo is an error, never a silent default. Bounds and choices: ``bound_problems``."""
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


def bound_problems(obj) -> list[str]:
    """Every setting whose value is out of its bounds or not one of its choices."""
    found = []
    for s in settings_of(type(obj)):
        message = s.problem(get_path(obj, s.path))
        if message:
            found.append(f"{s.path}: {message}")
    return found


def get_path(obj, dotted: str) -> Any:
    """The value at ``a.b`` of a dataclass or a nested dict."""
    for part in dotted.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def set_path(data: dict, dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``, creating the sections on the way."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def with_values(obj, overrides: dict[str, Any]):
    """A copy of a settings dataclass with dotted-path overrides, e.g. ``{"train.micro_batch": 2}``. Not validated:
    the planners use it on values they produce themselves; user input goes through ``from_dict``."""
    if not overrides:
        return obj
    nested: dict[str, dict] = {}
    changes = {}
    for dotted, value in overrides.items():
        head, _, rest = dotted.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            changes[head] = value
    for head, inner in nested.items():
        changes[head] = with_values(getattr(obj, head), inner)
    return dataclasses.replace(obj, **changes)


def differences(before, after) -> dict[str, Any]:
    """Dotted path → new value of each setting that differs between two configs of the same schema."""
    return {s.path: get_path(after, s.path) for s in settings_of(type(before))
            if get_path(before, s.path) != get_path(after, s.path)}


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
