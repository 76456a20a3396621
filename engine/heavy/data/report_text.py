"""The dataset check as terminal text: detection, problems, statistics and the rendered preview."""

from __future__ import annotations

from engine.heavy.data.pipeline import PreparedData

_GREEN, _RESET = "\033[32m", "\033[0m"


def render(prepared: PreparedData, *, max_problems: int = 20, color: bool = False) -> str:
    report, stats = prepared.report, prepared.stats
    lines = [
        f"Dataset:  {prepared.source} ({prepared.file_type})",
        f"Format:   {prepared.detection.format} — {prepared.detection.reason}",
        f"Template: {'the model' if prepared.template == 'model' else 'LlamaDesk default'}'s chat template"
        + ("  (cached result)" if prepared.cache_hit else ""),
        f"Rows:     {report.rows_read} read, {report.rows_usable} usable, {report.rows_skipped} skipped",
    ]
    if report.counts:
        lines.append("Problems: " + ", ".join(f"{code} ×{n}" for code, n in sorted(report.counts.items())))
        for problem in report.problems[:max_problems]:
            lines.append(f"  {problem}")
        hidden = sum(report.counts.values()) - min(max_problems, len(report.problems))
        if hidden > 0:
            lines.append(f"  … and {hidden} more (use --json for all)")
    lines.append(f"Tokens:   {stats.summary()}")
    if not prepared.usable:
        lines.append("No usable rows: this dataset cannot start a run. Fix the problems above, or choose the format "
                     "and columns (--format, --columns).")
    if prepared.preview:
        legend = "green" if color else "between ⟦ ⟧"
        lines.append(f"\nPreview (trained tokens shown {legend}):")
    for example in prepared.preview:
        lines.append(f"── row {example.row} · {example.tokens} tokens" + (" · truncated" if example.truncated else ""))
        lines.append(example.marked(_GREEN, _RESET) if color else example.marked())
    return "\n".join(lines)
