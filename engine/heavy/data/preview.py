"""The first examples as the model will see them, split into trained and untrained segments."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.heavy.data.tokenize import IGNORE, Tokenized


@dataclass
class PreviewExample:
    row: int
    tokens: int
    truncated: bool
    segments: list[tuple[str, bool]]  # (text, trained?) in order; their concatenation is the rendered text

    def to_dict(self) -> dict:
        return asdict(self)

    def marked(self, start: str = "⟦", end: str = "⟧") -> str:
        return "".join(f"{start}{text}{end}" if trained else text for text, trained in self.segments)


def build(items: list[Tokenized], count: int) -> list[PreviewExample]:
    previews = []
    seen = set()
    for item in items:
        if item.row in seen:  # only the first chunk of a long raw text
            continue
        seen.add(item.row)
        previews.append(_segments(item))
        if len(previews) == count:
            break
    return previews


def _segments(item: Tokenized) -> PreviewExample:
    """Group consecutive tokens by trained/untrained and cut the rendered text at their character offsets."""
    segments: list[tuple[str, bool]] = []
    begin = item.offsets[0][0] if item.offsets else 0
    for t in range(len(item.input_ids)):
        trained = item.labels[t] != IGNORE
        is_last = t + 1 == len(item.input_ids)
        if is_last or (item.labels[t + 1] != IGNORE) != trained:
            end = item.offsets[t][1] if is_last else item.offsets[t + 1][0]
            segments.append((item.text[begin:end], trained))
            begin = end
    truncated = item.full_length > len(item.input_ids) and not item.chunked
    return PreviewExample(item.row, len(item.input_ids), truncated, segments)
