"""A plot area that imports pyqtgraph (and numpy) only when a plot is first needed.

pyqtgraph's import costs about half a second on a small machine; deferring it keeps the window's cold start to its
first paint short, since no chart is visible on the first page.
"""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget


class LazyPlot(QWidget):
    def __init__(self, labels: dict[str, str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._labels = labels or {}
        self._plot = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    @property
    def plot(self):
        """The pyqtgraph PlotWidget, created on first use."""
        if self._plot is None:
            import pyqtgraph as pg

            from gui import theme

            colors = theme.colors()
            self._plot = pg.PlotWidget(background=colors.base)
            _adopt_menus(self._plot)
            for side, text in self._labels.items():
                self._plot.setLabel(side, text, color=colors.muted)
                axis = self._plot.getAxis(side)
                axis.setPen(pg.mkPen(colors.border))
                axis.setTextPen(pg.mkPen(colors.muted))
            self._layout.addWidget(self._plot)
        return self._plot

    @property
    def created(self) -> bool:
        return self._plot is not None

    def showEvent(self, event) -> None:
        self.plot  # noqa: B018 - build the plot when it first becomes visible
        super().showEvent(event)


def _adopt_menus(plot) -> None:
    """pyqtgraph leaves a plot's context menus without a parent, so they outlive the plot as Python's to free; the
    cycle collector frees such a live widget's children out of order (a crash in ~QWidget). As the plot's children,
    Qt deletes them with it."""
    item = plot.getPlotItem()
    for menu in (item.getViewBox().menu, item.ctrlMenu):
        if menu is not None:  # None where a plot has its menu turned off
            menu.setParent(plot, menu.windowFlags())
