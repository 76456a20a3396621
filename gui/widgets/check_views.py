"""What a dataset check draws: the examples as the model sees them (trained tokens highlighted) and the histogram of
token lengths with the cutoff. Dataset text is user data: it goes in through QTextCursor.insertText, never as HTML."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

from gui import theme
from gui.widgets.lazy_plot import LazyPlot


def show_preview(preview: QPlainTextEdit, examples: list[dict]) -> None:
    preview.clear()
    cursor = QTextCursor(preview.document())
    plain, trained, heading = QTextCharFormat(), QTextCharFormat(), QTextCharFormat()
    trained.setBackground(QColor(theme.colors().trained))
    heading.setFontWeight(QFont.Weight.Bold)
    for n, example in enumerate(examples):
        cut = " · truncated at the cutoff" if example.get("truncated") else ""
        cursor.insertText(("\n\n" if n else "") + f"Row {example.get('row')} · {example.get('tokens')} tokens"
                          f"{cut}\n", heading)
        for text, is_trained in example.get("segments", []):
            cursor.insertText(text, trained if is_trained else plain)


def clear_histogram(histogram: LazyPlot) -> None:
    """An empty plot whose axes forget the previous file's range."""
    if histogram.created:
        histogram.plot.clear()
        histogram.plot.enableAutoRange()


def show_histogram(histogram: LazyPlot, stats: dict) -> tuple[object, object, str]:
    """Draws the lengths; returns (bars, cutoff line, the sentence about the rows longer than the cutoff)."""
    import pyqtgraph as pg  # deferred: see LazyPlot

    clear_histogram(histogram)
    bars = line = None
    found = stats.get("histogram") or {}
    edges, counts = found.get("edges") or [], found.get("counts") or []
    if counts and len(edges) == len(counts) + 1:
        bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush="#60a5fa")
        histogram.plot.addItem(bars)
    cutoff, share = stats.get("cutoff") or 0, stats.get("truncated_share") or 0.0
    if cutoff:
        line = pg.InfiniteLine(pos=cutoff, angle=90, movable=False, pen=pg.mkPen("#dc2626", width=2),
                               label=f"cutoff {cutoff} · {share:.1%} cut", labelOpts={"position": 0.9})
        histogram.plot.addItem(line)
    sentence = (f"{share:.1%} of the rows ({stats.get('truncated_rows', 0):,}) are longer than the cutoff of "
                f"{cutoff:,} tokens and will be cut.")
    return bars, line, sentence
