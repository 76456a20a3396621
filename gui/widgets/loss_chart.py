"""The loss curve: train loss and eval loss against the step, repainted at most a few times a second."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from gui.widgets.lazy_plot import LazyPlot

REPAINT_MS = 250  # a fast run logs every step; repainting each time would waste the UI thread


class LossChart(LazyPlot):
    def __init__(self, parent: QWidget | None = None):
        super().__init__({"bottom": "step", "left": "loss"}, parent)
        self._curves = None
        self.train_points: list[tuple[int, float]] = []
        self.eval_points: list[tuple[int, float]] = []
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._repaint)

    def curves(self):
        if self._curves is None:
            import pyqtgraph as pg

            plot = self.plot
            plot.addLegend()
            plot.showGrid(x=True, y=True, alpha=0.2)
            self._curves = (plot.plot([], [], pen=pg.mkPen("#3b82f6", width=2), name="train"),
                            plot.plot([], [], pen=pg.mkPen("#f97316", width=2), symbol="o", symbolSize=6,
                                      name="eval"))
        return self._curves

    def clear(self) -> None:
        self.train_points, self.eval_points = [], []
        self._repaint()

    def set_points(self, train: list[tuple[int, float]], evaluation: list[tuple[int, float]]) -> None:
        self.train_points, self.eval_points = list(train), list(evaluation)
        self._repaint()

    def add_train(self, step: int, loss: float | None) -> None:
        if loss is not None:
            _add(self.train_points, step, loss)
            self._schedule()

    def add_eval(self, step: int, loss: float) -> None:
        _add(self.eval_points, step, loss)
        self._schedule()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._repaint()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _repaint(self) -> None:
        if not self.created and not self.isVisible():
            return  # drawn when first shown
        for curve, points in zip(self.curves(), (self.train_points, self.eval_points)):
            curve.setData([p[0] for p in points], [p[1] for p in points])


def _add(points: list[tuple[int, float]], step: int, loss: float) -> None:
    """One point per step: a step the curve already has (a followed run's history and its live events overlap)
    replaces it rather than drawing it twice."""
    if points and step <= points[-1][0]:
        if step == points[-1][0]:
            points[-1] = (step, loss)
        return
    points.append((step, loss))
