"""What an API model costs: a small, dated price table the user can edit (resources/prices.yaml, copied to
LlamaDesk's folder on the first edit), never fetched. Prices are US dollars per million tokens."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.light import paths

FILE = "prices.yaml"
PER = 1_000_000
FIELDS = ("input", "output", "training", "tuned_input", "tuned_output")


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    training: float | None = None
    tuned_input: float | None = None
    tuned_output: float | None = None


@dataclass
class PriceTable:
    date: str
    source: str
    models: dict[str, Price]
    path: Path
    problem: str = ""  # why the user's copy was not used
    electricity_per_kwh: float | None = None

    def find(self, model: str) -> tuple[str, Price, bool] | None:
        """(the table's name, its prices, whether ``model`` is a fine-tuned copy) for a model id: the longest name in
        the table that starts it ("gpt-4o-mini-2024-07-18" is gpt-4o-mini; "ft:gpt-4o-mini-…:org::id" is its
        fine-tune)."""
        tuned = model.startswith("ft:")
        bare = model[3:] if tuned else model
        names = sorted((n for n in self.models if bare == n or bare.startswith(n + "-")), key=len, reverse=True)
        return (names[0], self.models[names[0]], tuned) if names else None


def user_file() -> Path:
    return paths.home() / FILE


def shipped_file() -> Path:
    import resources

    return Path(str(resources.path(FILE)))


def table() -> PriceTable:
    """The user's copy when there is a valid one, else the shipped table (with why the copy was passed over)."""
    problem = ""
    if user_file().is_file():
        try:
            return _read(user_file())
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problem = f"{user_file()}: {exc}; the shipped prices are used instead"
    found = _read(shipped_file())
    found.problem = problem
    return found


def editable_copy() -> Path:
    """The user's price file, made from the shipped one the first time."""
    target = user_file()
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped_file(), target)
    return target


def reply_cost(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    found = table().find(model)
    if found is None or prompt_tokens is None or completion_tokens is None:
        return None
    _, price, tuned = found
    rate_in = price.tuned_input if tuned and price.tuned_input is not None else price.input
    rate_out = price.tuned_output if tuned and price.tuned_output is not None else price.output
    return (prompt_tokens * rate_in + completion_tokens * rate_out) / PER


def _read(path: Path) -> PriceTable:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ValueError("expected 'date', 'source' and a 'models' mapping")
    models = {}
    for name, values in data["models"].items():
        if not isinstance(values, dict) or not all(k in FIELDS for k in values) or \
                not all(isinstance(values.get(k), (int, float)) for k in ("input", "output")):
            raise ValueError(f"models.{name}: give input and output (and optionally training, tuned_input, "
                             "tuned_output) as numbers")
        models[str(name)] = Price(**{k: float(v) for k, v in values.items() if v is not None})
    electricity = data.get("electricity_per_kwh")
    if electricity is not None and not isinstance(electricity, (int, float)):
        raise ValueError("electricity_per_kwh: give a number (US dollars per kWh)")
    return PriceTable(str(data.get("date", "")), str(data.get("source", "")), models, path,
                      electricity_per_kwh=None if electricity is None else float(electricity))
