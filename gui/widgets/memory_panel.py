"""The memory panel: what the run needs, line by line, against the GPU's free memory, and one-click fixes."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.light import calibration, estimator, fit, gpu
from engine.light.config import RunConfig
from engine.light.errors import ModelSourceError
from engine.light.units import GIB
from gui import theme
from gui.widgets.labels import plain_label

VERDICT_COLORS = {"fits": "success", "tight": "warning", "won't fit": "error"}  # the theme's, legible in both
RECHECK_SHARE = 0.02  # a new GPU reading redoes the verdict when free memory moved by more than this share


class MemoryPanel(QWidget):
    """Signals: sig_apply(RunConfig) when the user applies a suggestion."""

    sig_apply = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.verdict = plain_label()
        self.table = QTableWidget(0, 2)
        self.table.setAccessibleName("GPU memory the run needs")
        self.table.setHorizontalHeaderLabels(("Needs", "GiB"))
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        # The page scrolls; the table shows every line at its own height instead of scrolling inside it.
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.fixes = QVBoxLayout()
        self._fix_group = QButtonGroup(self)  # a fix button's id: its place in _suggestions
        self._fix_group.idClicked.connect(self._on_fix_clicked)
        self._suggestions: list[estimator.Suggestion] = []
        self._fix_config: RunConfig | None = None  # the settings the suggestions change
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.verdict)
        layout.addWidget(self.table)
        layout.addLayout(self.fixes)
        self.report: fit.FitReport | None = None
        self._reading: gpu.Probe | None = None  # the GPU reading the shown verdict was made against

    def on_probe(self, config: RunConfig, probe: gpu.Probe, longest_row: int | None = None) -> None:
        """A new GPU reading: redo the verdict when it says something new (the first one, a GPU appearing or going,
        free memory moving noticeably)."""
        if changed(self._reading, probe):
            self.show_for(config, probe, longest_row)

    def show_for(self, config: RunConfig, probe: gpu.Probe | None, longest_row: int | None = None) -> None:
        """The estimate for ``config``; with the dataset's ``longest_row``, for the sequences the data has."""
        self._clear_fixes()
        try:
            self.report = report = fit.check(config, probe=probe or gpu.Probe(False, "no GPU reading yet"),
                                             longest_row=longest_row)
        except ModelSourceError as exc:
            self.report = None
            self.table.setRowCount(0)
            self._fit_height()
            self.verdict.setText(f"No estimate for {config.model}: {exc.message}.")
            return
        self._reading = probe
        self._show_lines(report)
        self._show_verdict(report)
        self._fix_config, self._suggestions = config, report.suggestions[:4]
        for index, suggestion in enumerate(self._suggestions):
            button = QPushButton(f"Apply: {suggestion.change} ({suggestion.need_bytes / GIB:.1f} GiB)")
            self._fix_group.addButton(button, index)
            self.fixes.addWidget(button)

    def _on_fix_clicked(self, index: int) -> None:
        self.sig_apply.emit(fit.apply(self._fix_config, self._suggestions[index]))

    def _show_lines(self, report: fit.FitReport) -> None:
        lines = report.estimate.lines
        self.table.setRowCount(len(lines) + 1)
        for row, line in enumerate(lines):
            name = QTableWidgetItem(sentence_case(line.name) + ("" if line.exact else " (est.)"))
            name.setToolTip(line.explanation)
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, QTableWidgetItem(f"{line.bytes / GIB:.2f}"))
        self.table.setItem(len(lines), 0, QTableWidgetItem("Total"))
        self.table.setItem(len(lines), 1, QTableWidgetItem(f"{report.estimate.total / GIB:.2f}"))
        self._fit_height()

    def _fit_height(self) -> None:
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + rows + 2 * self.table.frameWidth())

    def _show_verdict(self, report: fit.FitReport) -> None:
        data = ""
        if report.worst_case_bytes is not None:
            data = (f" with this dataset (its longest row: {report.data_sequence:,} tokens); "
                    f"{report.worst_case_bytes / GIB:.1f} GiB at the full cutoff, the worst case")
        if report.verdict is None:
            # Without a GPU the page's GPU line already says why; the panel does not say it again.
            why = ("This machine has no GPU to compare it with." if report.reason.lower().startswith(gpu.NO_GPU.lower())
                   else report.reason)
            self.verdict.setText(f"Needs about {report.estimate.total / GIB:.1f} GiB on a CUDA GPU{data}. {why}")
            self.verdict.setStyleSheet("")
        else:
            v = report.verdict
            self.verdict.setText(f"{report.gpu_name}: needs {v.need_bytes / GIB:.1f} GiB{data}; "
                                 f"{v.free_bytes / GIB:.1f} GiB free — {v.status} "
                                 f"(margin {v.margin_bytes / GIB:+.1f} GiB). Largest micro-batch that fits: "
                                 f"{report.largest_micro_batch}; longest sequence: {report.longest_sequence}.")
            self.verdict.setStyleSheet(f"color: {getattr(theme.colors(), VERDICT_COLORS[v.status])};")
            if report.per_gpu:
                how = ("each holds the whole model (DDP)" if report.strategy == "ddp" else
                       "the weights are sharded across them (FSDP)")
                cards = "; ".join(f"{c['name']} ({c['bus_id']}): {c['free_bytes'] / GIB:.1f} GiB free — {c['status']}"
                                  for c in report.per_gpu)
                self.verdict.setText(f"{len(report.per_gpu)} GPUs, {how}; the need is per GPU, against the one with "
                                     f"the least free memory.\n{cards}\n{self.verdict.text()}")
        for entry in report.measured[:1]:
            self.verdict.setText(self.verdict.text() + "\nSimilar run here: " + calibration.describe(entry))

    def fix_buttons(self) -> list[QPushButton]:
        return [self.fixes.itemAt(i).widget() for i in range(self.fixes.count())]

    def _clear_fixes(self) -> None:
        while self.fixes.count():
            widget = self.fixes.takeAt(0).widget()
            self._fix_group.removeButton(widget)
            widget.deleteLater()


def sentence_case(name: str) -> str:
    """An estimate line's name as a line item starts: "Optimizer states"; "LoRA adapters" keeps its capitals."""
    return name[:1].upper() + name[1:]


def changed(before: gpu.Probe | None, after: gpu.Probe) -> bool:
    """Whether a new reading changes what a fit verdict says."""
    if before is None or before.available != after.available or len(before.gpus) != len(after.gpus):
        return True
    return any(abs(a.free_bytes - b.free_bytes) > RECHECK_SHARE * max(a.free_bytes, 1)
               for a, b in zip(after.gpus, before.gpus))
