"""Token statistics for the chosen tokenizer and cutoff; the VRAM estimate and the ETA build on these."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from engine.heavy.data.tokenize import IGNORE, Tokenized

HISTOGRAM_BINS = 30


@dataclass
class TokenStats:
    rows: int = 0
    sequences: int = 0  # training sequences after chunking/packing
    total_tokens: int = 0  # after truncation
    trained_tokens: int = 0  # tokens that carry a label
    mean_length: float = 0.0
    percentiles: dict[str, int] = field(default_factory=dict)  # "p50", "p90", "p95", "p99", "max" (before cutoff)
    cutoff: int = 0
    truncated_rows: int = 0
    truncated_share: float = 0.0
    histogram: dict = field(default_factory=dict)  # {"edges": [...], "counts": [...]} of lengths before cutoff

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        p = self.percentiles
        return (
            f"{self.rows} rows, {self.total_tokens:,} tokens ({self.trained_tokens:,} trained), "
            f"length p50 {p.get('p50', 0)} / p95 {p.get('p95', 0)} / max {p.get('max', 0)}, "
            f"{self.truncated_share:.1%} longer than the cutoff of {self.cutoff}"
        )


def compute(items: list[Tokenized], *, cutoff: int, sequences: int) -> TokenStats:
    lengths_by_row: dict[int, int] = {}
    for item in items:
        lengths_by_row.setdefault(item.row, item.full_length)
    lengths = sorted(lengths_by_row.values())
    stats = TokenStats(rows=len(lengths), sequences=sequences, cutoff=cutoff)
    if not lengths:
        return stats
    stats.total_tokens = sum(len(i.input_ids) for i in items)
    stats.trained_tokens = sum(sum(1 for label in i.labels if label != IGNORE) for i in items)
    stats.mean_length = round(sum(lengths) / len(lengths), 1)
    stats.percentiles = {f"p{q}": _nearest_rank(lengths, q) for q in (50, 90, 95, 99)}
    stats.percentiles["max"] = lengths[-1]
    stats.truncated_rows = sum(1 for n in lengths if n > cutoff)
    stats.truncated_share = stats.truncated_rows / len(lengths)
    stats.histogram = _histogram(lengths)
    return stats


def _nearest_rank(sorted_values: list[int], q: int) -> int:
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _histogram(lengths: list[int]) -> dict:
    top = max(lengths)
    width = max(1, math.ceil((top + 1) / HISTOGRAM_BINS))
    counts = [0] * math.ceil((top + 1) / width)
    for n in lengths:
        counts[n // width] += 1
    return {"edges": [i * width for i in range(len(counts) + 1)], "counts": counts}
