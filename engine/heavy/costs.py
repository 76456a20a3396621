"""The cost of each way: a run's dataset as OpenAI fine-tuning JSONL (the ``messages`` format), its tokens, and what
an API fine-tune and answering requests through the API would cost (the dated price table, engine/light/prices.py),
beside what the local run measured: its training time and, on a GPU, its energy (NVML power over time).

Tokens are counted with the run's own tokenizer over the chat-templated rows; an API provider's tokenizer counts
somewhat differently, so the API figures are estimates.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.heavy.data import formats, pipeline, readers
from engine.heavy.data.problems import Report
from engine.heavy.models.resolve import model_folder
from engine.heavy.train_setup import tokenizer_for
from engine.light import prices
from engine.light.errors import DatasetError
from engine.light.run_folder import RunFolder


def openai_messages(source: str, settings) -> tuple[list[dict], int]:
    """The dataset's conversations in OpenAI's fine-tuning format, and how many rows could not be (raw text has no
    conversation)."""
    report = Report()
    table = readers.read_source(source, report)
    detection = formats.detect(table.rows, table.file_type, forced=settings.format or None, mapping=settings.columns)
    if detection.format == formats.TEXT:
        raise DatasetError("raw text has no conversations: OpenAI's chat fine-tuning needs messages", where=source,
                           hint="export a chat dataset (alpaca, sharegpt, openai messages, prompt/completion)")
    lines, skipped = [], 0
    for example in formats.normalize(table.rows, detection, report):
        if not example.messages:
            skipped += 1
            continue
        messages = []
        for message in example.messages:
            entry = {"role": message["role"], "content": message.get("content") or ""}
            if message.get("tool_calls"):
                entry["tool_calls"] = message["tool_calls"]
            messages.append(entry)
        line = {"messages": messages}
        if example.tools:
            line["tools"] = example.tools
        lines.append(line)
    return lines, skipped + report.rows_skipped


def write_jsonl(lines: list[dict], out: Path) -> None:
    partial = out.with_suffix(out.suffix + ".partial")
    partial.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    partial.replace(out)


def estimate(folder: RunFolder, *, api_model: str = "gpt-4o-mini", requests_per_month: int = 10_000,
             jsonl: Path | None = None) -> dict:
    """Every figure the Costs view shows, as plain data."""
    config = folder.load_config()
    tokenizer = tokenizer_for(model_folder(config.model).path)
    prepared = pipeline.prepare(config.dataset, tokenizer, config.data, preview_rows=0)
    stats = prepared.stats
    rows = max(1, stats.rows)
    epochs = _epochs_trained(folder, config)
    result = {
        "run": folder.name, "model": config.model, "dataset": config.dataset,
        "tokens": {"rows": stats.rows, "total": stats.total_tokens, "trained": stats.trained_tokens,
                   "prompt_per_request": round((stats.total_tokens - stats.trained_tokens) / rows),
                   "reply_per_request": round(stats.trained_tokens / rows),
                   "counted_with": f"{config.model}'s tokenizer", "epochs": epochs},
        "local": _local(folder),
        "requests_per_month": requests_per_month,
    }
    table = prices.table()
    result["prices"] = {"date": table.date, "source": table.source, "file": str(table.path),
                        "problem": table.problem}
    found = table.find(api_model)
    result["api"] = {"model": api_model, "priced": found is not None}
    if found is not None:
        name, price, _ = found
        prompt, reply = result["tokens"]["prompt_per_request"], result["tokens"]["reply_per_request"]
        per_request = (prompt * price.input + reply * price.output) / prices.PER
        api = {"priced_as": name, "answer_per_month": per_request * requests_per_month}
        if price.training is not None:
            api["fine_tune"] = stats.total_tokens * epochs * price.training / prices.PER
        if price.tuned_input is not None and price.tuned_output is not None:
            api["tuned_answer_per_month"] = (prompt * price.tuned_input + reply * price.tuned_output) / prices.PER \
                * requests_per_month
        result["api"].update(api)
    if jsonl is not None:
        lines, skipped = openai_messages(config.dataset, config.data)
        write_jsonl(lines, jsonl)
        result["jsonl"] = {"path": str(jsonl), "examples": len(lines), "skipped": skipped}
    return result


def _epochs_trained(folder: RunFolder, config) -> float:
    """The epochs the run really trained (its last logged epoch), else the configured ones."""
    logged = [m["epoch"] for m in folder.metrics() if m.get("epoch") is not None]
    return logged[-1] if logged else config.train.epochs


def _local(folder: RunFolder) -> dict:
    timed = [m for m in folder.metrics() if m.get("elapsed_s") is not None]
    energy = [m["energy_wh"] for m in folder.metrics() if m.get("energy_wh") is not None]
    local = {"training_s": timed[-1]["elapsed_s"] if timed else None,
             "energy_wh": energy[-1] if energy else None}
    rate = prices.table().electricity_per_kwh
    if local["energy_wh"] is not None and rate is not None:
        local["electricity"] = local["energy_wh"] / 1000 * rate
    return local
