"""The costs of a run and of the API ways, in words: for the terminal and the Costs dialog alike."""

from __future__ import annotations

from engine.light.units import format_duration


def money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def text(result: dict) -> str:
    t, local, api = result["tokens"], result["local"], result["api"]
    lines = [f"Run {result['run']} — {result['model']} on {result['dataset']}",
             f"Dataset: {t['rows']:,} rows, {t['total']:,} tokens ({t['trained']:,} in replies); per request about "
             f"{t['prompt_per_request']:,} tokens in and {t['reply_per_request']:,} out (counted with "
             f"{t['counted_with']}; an API's tokenizer counts somewhat differently)", ""]
    trained = format_duration(local["training_s"]) if local.get("training_s") is not None else "—"
    energy = (f"{local['energy_wh']:.1f} Wh" + (f" ≈ {money(local['electricity'])} of electricity"
                                               if local.get("electricity") is not None else "")
              if local.get("energy_wh") is not None else "not measured (no NVIDIA GPU reading: a CPU run)")
    lines += ["This machine (measured):", f"  training time {trained} for {t['epochs']:g} epoch(s)",
              f"  energy {energy}", ""]
    requests = result["requests_per_month"]
    if not api["priced"]:
        lines.append(f"API: {api['model']} is not in the price table ({result['prices']['file']}); add it there.")
    else:
        lines.append(f"API ({api['model']}, priced as {api['priced_as']}; prices of {result['prices']['date']}, "
                     f"{result['prices']['source']}):")
        if "fine_tune" in api:
            lines.append(f"  fine-tune on this dataset: {money(api['fine_tune'])} ({t['total']:,} tokens × "
                         f"{t['epochs']:g} epochs)")
        lines.append(f"  answering {requests:,} requests a month: {money(api['answer_per_month'])}")
        if "tuned_answer_per_month" in api:
            lines.append(f"  the same with the fine-tuned API model: {money(api['tuned_answer_per_month'])}")
    if result["prices"].get("problem"):
        lines.append(f"Note: {result['prices']['problem']}")
    if "jsonl" in result:
        j = result["jsonl"]
        lines += ["", f"OpenAI fine-tuning JSONL: {j['path']} ({j['examples']:,} examples"
                  + (f", {j['skipped']} rows left out" if j["skipped"] else "") + ")"]
    return "\n".join(lines)
