"""What a dataset check draws: its summary line, the Problems table, the examples as the model sees them (trained
tokens highlighted) and the histogram of token lengths with the cutoff. Dataset text is user data: it goes in through
QTextCursor.insertText and table items, never as HTML."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTableWidget, QTableWidgetItem

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


def summary(report: dict, stats: dict) -> tuple[str, str]:
    """The check's one line (rows, tokens, lengths in words) and its tooltip with the exact statistics' names."""
    p = stats.get("percentiles") or {}
    text = (f"{report.get('rows_read', 0):,} rows read · {report.get('rows_usable', 0):,} usable · "
            f"{report.get('rows_skipped', 0):,} skipped · {stats.get('total_tokens', 0):,} tokens "
            f"({stats.get('trained_tokens', 0):,} trained)")
    if not p:
        return text, ""
    text += f" · tokens per row: half under {p.get('p50', 0)}, 95% under {p.get('p95', 0)}, longest {p.get('max', 0)}"
    return text, (f"Median (p50) {p.get('p50', 0)}, 95th percentile (p95) {p.get('p95', 0)}, maximum "
                  f"{p.get('max', 0)} tokens per row")


def show_problems(table: QTableWidget, report: dict) -> str:
    """Fills the Problems table (severity, row, line, field, message; the row number kept for jumping to it) and
    returns the tab's title with the count."""
    problems = report.get("problems", [])
    table.setRowCount(len(problems))
    for row, problem in enumerate(problems):
        cells = (problem.get("severity", ""), problem.get("row"), problem.get("line"), problem.get("field", ""),
                 problem.get("message", ""))
        for column, value in enumerate(cells):
            table.setItem(row, column, QTableWidgetItem("" if value is None else str(value)))
        table.item(row, 1).setData(Qt.ItemDataRole.UserRole, problem.get("row"))
    table.resizeColumnsToContents()
    total = report.get("problems_total", len(problems))
    shown = f"{len(problems)} of {total}" if total > len(problems) else str(total)
    return f"Problems ({shown})"
