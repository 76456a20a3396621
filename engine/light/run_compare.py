"""What differs between runs: their settings (by dotted name, only where they differ), their curves and their
before/after numbers, for the Runs page's Compare."""

from __future__ import annotations

from engine.light.run_folder import RunFolder

# The before/after numbers a comparison lists, as (label, side, key) of evaluation.json.
EVALUATION_ROWS = (("validation loss, base model", "before", "loss"), ("validation loss, fine-tuned", "after", "loss"),
                   ("perplexity, base model", "before", "perplexity"), ("perplexity, fine-tuned", "after", "perplexity"),
                   ("ROUGE-L, base model", "before", "rouge_l"), ("ROUGE-L, fine-tuned", "after", "rouge_l"))


def flatten(data: dict, prefix: str = "") -> dict:
    """{"train": {"micro_batch": 4}} → {"train.micro_batch": 4}."""
    found = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value) and path != "data.columns":
            found.update(flatten(value, f"{path}."))
        else:
            found[path] = value
    return found


def setting_differences(configs: list[dict]) -> list[tuple[str, list]]:
    """(dotted name, the value in each run) for every setting whose value is not the same in all runs. The run name
    is left out: it always differs."""
    flat = [flatten(config) for config in configs]
    paths = sorted({path for config in flat for path in config} - {"run_name"})
    rows = []
    for path in paths:
        values = [config.get(path) for config in flat]
        if any(value != values[0] for value in values[1:]):
            rows.append((path, values))
    return rows


def curves(folder: RunFolder) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train loss points, eval loss points): the run folder's own reader, so a comparison draws what the Train page
    draws."""
    return folder.loss_points()


def evaluation_numbers(folders: list[RunFolder]) -> list[tuple[str, list]]:
    """(label, the number of each run, None where it has none) for the before/after rows any run has."""
    results = [folder.evaluation() or {} for folder in folders]
    rows = []
    for label, side, key in EVALUATION_ROWS:
        values = [result.get(side, {}).get(key) for result in results]
        if any(value is not None for value in values):
            rows.append((label, values))
    return rows
