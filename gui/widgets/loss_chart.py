"""The loss curve: train loss and eval loss against the step, repainted at most a few times a second."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

REPAINT_MS = 250  # a fast run logs every step; repainting each time would waste the UI thread


class LossChart(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#3b82f6", width=2), name="train")
        self.eval_curve = self.plot.plot([], [], pen=pg.mkPen("#f97316", width=2), symbol="o", symbolSize=6,
                                         name="eval")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.train_points: list[tuple[int, float]] = []
        self.eval_points: list[tuple[int, float]] = []
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._repaint)

    def clear(self) -> None:
        self.train_points, self.eval_points = [], []
        self._repaint()

    def set_points(self, train: list[tuple[int, float]], evaluation: list[tuple[int, float]]) -> None:
        self.train_points, self.eval_points = list(train), list(evaluation)
        self._repaint()

    def add_train(self, step: int, loss: float | None) -> None:
        if loss is not None:
            self.train_points.append((step, loss))
            self._schedule()

    def add_eval(self, step: int, loss: float) -> None:
        self.eval_points.append((step, loss))
        self._schedule()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _repaint(self) -> None:
        for curve, points in ((self.train_curve, self.train_points), (self.eval_curve, self.eval_points)):
            curve.setData([p[0] for p in points], [p[1] for p in points])
