"""The loss curve: train loss and eval loss against the step, repainted at most a few times a second; optionally the
train loss smoothed (an exponential moving average, as TensorBoard draws it) over the raw curve, which fades."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from gui.widgets.lazy_plot import LazyPlot

REPAINT_MS = 250  # a fast run logs every step; repainting each time would waste the UI thread
SMOOTHING = 0.8  # weight of the past in the moving average
TRAIN, EVAL, SMOOTHED = "#3b82f6", "#f97316", "#1d4ed8"


class LossChart(LazyPlot):
    def __init__(self, parent: QWidget | None = None):
        super().__init__({"bottom": "step", "left": "loss"}, parent)
        self._curves = None
        self.train_points: list[tuple[int, float]] = []
        self.eval_points: list[tuple[int, float]] = []
        self.smoothed = False
        self._legend_names: list[str] = []
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._repaint)

    def curves(self):
        if self._curves is None:
            import pyqtgraph as pg

            from gui import theme

            plot = self.plot
            self._legend = plot.addLegend(labelTextColor=theme.colors().text)
            plot.showGrid(x=True, y=True, alpha=0.2)
            self._curves = {"train": plot.plot([], [], pen=pg.mkPen(TRAIN, width=2)),
                            "smoothed": plot.plot([], [], pen=pg.mkPen(SMOOTHED, width=2.5)),
                            "eval": plot.plot([], [], pen=pg.mkPen(EVAL, width=2), symbol="o", symbolSize=6,
                                              symbolBrush=EVAL)}
        return self._curves

    def set_smoothed(self, on: bool) -> None:
        self.smoothed = on
        self._repaint()

    def legend_names(self) -> list[str]:
        return list(self._legend_names)

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
        import pyqtgraph as pg

        curves = self.curves()
        smooth = smoothed(self.train_points) if self.smoothed else []
        data = {"train": self.train_points, "smoothed": smooth, "eval": self.eval_points}
        for name, points in data.items():
            curves[name].setData([p[0] for p in points], [p[1] for p in points])
        curves["train"].setPen(pg.mkPen(TRAIN + ("55" if self.smoothed else ""), width=1.5 if self.smoothed else 2))
        # A legend entry only for what is drawn: no "eval" for a run that holds out no validation split.
        names = [n for n, label in (("train", "train"), ("smoothed", "train, smoothed"), ("eval", "eval"))
                 if data[n]]
        if names != self._legend_names:
            self._legend.clear()
            for name in names:
                self._legend.addItem(curves[name], {"train": "train", "smoothed": "train, smoothed",
                                                    "eval": "eval"}[name])
            self._legend_names = names


def smoothed(points: list[tuple[int, float]], weight: float = SMOOTHING) -> list[tuple[int, float]]:
    """The exponential moving average of the losses, debiased so the first points are not pulled towards zero."""
    found, average = [], 0.0
    for i, (step, loss) in enumerate(points, start=1):
        average = weight * average + (1 - weight) * loss
        found.append((step, average / (1 - weight ** i)))
    return found


def _add(points: list[tuple[int, float]], step: int, loss: float) -> None:
    """One point per step: a step the curve already has (a followed run's history and its live events overlap)
    replaces it rather than drawing it twice."""
    if points and step <= points[-1][0]:
        if step == points[-1][0]:
            points[-1] = (step, loss)
        return
    points.append((step, loss))
