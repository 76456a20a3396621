"""The loss curve: train loss and eval loss against the step, repainted at most a few times a second; optionally the
train loss smoothed (an exponential moving average, as TensorBoard draws it) over the raw curve, which fades.

The legend is a row above the plot, never over the curves; the step axis has whole steps only; a curve of a few
points draws its points, so a run's first step shows as a dot rather than an empty chart."""

from __future__ import annotations

import math

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from gui.widgets.lazy_plot import LazyPlot

REPAINT_MS = 250  # a fast run logs every step; repainting each time would waste the UI thread
SMOOTHING = 0.8  # weight of the past in the moving average
FEW_POINTS = 20  # up to this many points, each is drawn as a dot as well as joined by the line
TRAIN, EVAL, SMOOTHED = "#3b82f6", "#f97316", "#1d4ed8"
LABELS = {"train": "training loss", "smoothed": "smoothed", "eval": "validation loss"}
MARKS = {"train": "━", "smoothed": "━", "eval": "●"}
COLORS = {"train": TRAIN, "smoothed": SMOOTHED, "eval": EVAL}
TIP = ("Training loss: how far the model's predictions are from the training examples, at each step. Validation "
       "loss: the same on the examples held out from training (the validation split); when it rises while the "
       "training loss falls, the model is memorising rather than learning. Lower is better for both.")


class LossChart(LazyPlot):
    def __init__(self, parent: QWidget | None = None):
        super().__init__({"bottom": "training step", "left": "loss"}, parent)
        self._curves = None
        self.train_points: list[tuple[int, float]] = []
        self.eval_points: list[tuple[int, float]] = []
        self.smoothed = False
        self._legend_names: list[str] = []
        self.setToolTip(TIP)
        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self._repaint)

    def curves(self):
        if self._curves is None:
            import pyqtgraph as pg

            plot = self.plot
            _use_step_axis(plot)
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

    def legend_item(self):
        """The legend's row above the plot (the plot's title line)."""
        return self.plot.getPlotItem().titleLabel

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
        train = TRAIN + ("55" if self.smoothed else "")
        curves["train"].setPen(pg.mkPen(train, width=1.5 if self.smoothed else 2))
        # A line needs two points: with few, each point is drawn too (one step alone is a dot, not an empty chart).
        few = len(self.train_points) <= FEW_POINTS
        curves["train"].setSymbol("o" if few else None)
        curves["train"].setSymbolSize(6)
        curves["train"].setSymbolBrush(train)
        curves["train"].setSymbolPen(None)
        # A legend entry only for what is drawn: no "eval" for a run that holds out no validation split.
        names = [name for name in LABELS if data[name]]
        if names != self._legend_names:
            self._legend_names = names
            self._show_legend(names)

    def _show_legend(self, names: list[str]) -> None:
        from gui import theme

        item = self.plot.getPlotItem()
        if not names:
            item.setTitle(None)
            return
        text = theme.colors().text
        entries = [f'<span style="color:{COLORS[n]}">{MARKS[n]}</span>&nbsp;<span style="color:{text}">'
                   f'{LABELS[n]}</span>' for n in names]
        item.setTitle("&nbsp;&nbsp;&nbsp;".join(entries), size="9pt")


def _use_step_axis(plot) -> None:
    """The bottom axis with whole steps only, styled as LazyPlot styles its axes."""
    import pyqtgraph as pg

    from gui import theme

    class StepAxis(pg.AxisItem):
        def tickValues(self, minVal, maxVal, size):
            levels = [(spacing, [v for v in values if float(v).is_integer()])
                      for spacing, values in super().tickValues(minVal, maxVal, size) if spacing >= 1]
            if not levels:  # zoomed in below one step: a tick at each whole step in view
                low, high = sorted((minVal, maxVal))
                levels = [(1.0, [float(v) for v in range(math.ceil(low), math.floor(high) + 1)])]
            return levels

    colors = theme.colors()
    axis = StepAxis("bottom")
    axis.setPen(pg.mkPen(colors.border))
    axis.setTextPen(pg.mkPen(colors.muted))
    plot.setAxisItems({"bottom": axis})
    plot.setLabel("bottom", "training step", color=colors.muted)


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
