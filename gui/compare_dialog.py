"""Compare runs: their loss curves over each other, the settings in which they differ, and their before/after
numbers. Opened from the Runs page with two or more runs selected."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.light import run_compare
from engine.light.run_folder import RunSummary
from gui.widgets.labels import plain_label
from gui.widgets.lazy_plot import LazyPlot

# One colour per run, distinct on the light and the dark palette alike.
PALETTE = ("#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#eab308", "#06b6d4", "#64748b")


class RunCurves(LazyPlot):
    """The runs' train losses as lines and their eval losses as dashed lines with points, one colour per run."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__({"bottom": "step", "left": "loss"}, parent)
        self.drawn: list[str] = []  # the legend's entries, in order

    def show_runs(self, runs: list[tuple[str, list, list]]) -> None:
        import pyqtgraph as pg

        from gui import theme

        plot = self.plot
        plot.clear()
        legend = plot.addLegend(labelTextColor=theme.colors().text)
        legend.clear()
        plot.showGrid(x=True, y=True, alpha=0.2)
        self.drawn = []
        for index, (name, train, evaluation) in enumerate(runs):
            color = PALETTE[index % len(PALETTE)]
            if train:
                plot.plot([p[0] for p in train], [p[1] for p in train], pen=pg.mkPen(color, width=2), name=name)
                self.drawn.append(name)
            if evaluation:
                plot.plot([p[0] for p in evaluation], [p[1] for p in evaluation], name=f"{name} (eval)",
                          pen=pg.mkPen(color, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine), symbol="o",
                          symbolSize=6, symbolBrush=color)
                self.drawn.append(f"{name} (eval)")


def _table(rows: list[tuple[str, list]], names: list[str], first: str, fmt) -> QTableWidget:
    table = QTableWidget(len(rows), len(names) + 1)
    table.setHorizontalHeaderLabels([first, *names])
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    for row, (label, values) in enumerate(rows):
        for column, text in enumerate([label, *(fmt(value) for value in values)]):
            item = QTableWidgetItem(text)  # plain text items
            item.setToolTip(text)  # a long setting (a path, a list) is cut with "…" in its column
            table.setItem(row, column, item)
    return table


def _setting_text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _page(note: str, table: QTableWidget) -> QWidget:
    page = QWidget()
    column = QVBoxLayout(page)
    column.addWidget(plain_label(note))
    column.addWidget(table, 1)
    return page


class CompareDialog(QDialog):
    def __init__(self, runs: list[RunSummary], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare {len(runs)} runs")
        self.resize(1000, 700)
        names = [run.name for run in runs]
        self.curves = RunCurves()
        self.curves.setMinimumHeight(260)
        self.curves.show_runs([(run.name, *run_compare.curves(run.folder)) for run in runs])
        differences = run_compare.setting_differences([run.config for run in runs])
        self.settings_table = _table(differences, names, "Setting", _setting_text)
        self.settings_table.setAccessibleName("Settings that differ")
        numbers = run_compare.evaluation_numbers([run.folder for run in runs])
        self.numbers_table = _table(numbers, names, "Before / after", lambda v: "—" if v is None else f"{v:.3f}")
        self.numbers_table.setAccessibleName("Before and after numbers")
        tabs = QTabWidget()
        tabs.addTab(_page("Only the settings that differ between these runs." if differences else
                          "These runs have the same settings.", self.settings_table), "Settings")
        tabs.addTab(_page("The base model and each fine-tune on its validation split." if numbers else
                          "None of these runs has a comparison with its base model yet.", self.numbers_table),
                    "Before and after")
        splitter = QSplitter()
        splitter.setOrientation(splitter.orientation().Vertical)
        splitter.addWidget(self.curves)
        splitter.addWidget(tabs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
