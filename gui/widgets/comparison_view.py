"""A run's before/after comparison (its evaluation.json): the headline numbers of the base model and the fine-tune,
and each validation prompt's reference beside both answers, all as plain text."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from gui.widgets.labels import plain_label

COLUMNS = ("Question", "Reference", "Base model", "Fine-tuned")
API_COLUMN = "API model"


def headline(result: dict) -> str:
    """'validation loss 2.41 → 0.63 · perplexity 11.1 → 1.9 · ROUGE-L 0.18 → 0.71' (base → fine-tuned)."""
    parts = []
    for key, label, digits in (("loss", "validation loss", 2), ("perplexity", "perplexity", 1),
                               ("rouge_l", "ROUGE-L", 2)):
        before, after = result.get("before", {}).get(key), result.get("after", {}).get(key)
        if before is not None and after is not None:
            parts.append(f"{label} {before:.{digits}f} → {after:.{digits}f}")
    rows = result.get("validation_rows")
    text = "Base model → fine-tuned: " + " · ".join(parts) + (f" (on {rows:,} validation rows)" if rows else "")
    api = result.get("api")
    if api and api.get("rouge_l") is not None:
        cost = f", ${api['cost_usd']:.4f}" if api.get("cost_usd") is not None else ""
        text += (f"\nAPI model {api['model']}: ROUGE-L {api['rouge_l']:.2f} on {api['answered']} prompts "
                 f"({api['completion_tokens']:,} tokens{cost})")
        if api.get("stopped"):
            text += f"; stopped early: {api['stopped']}"
    return text


class ComparisonView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = plain_label(selectable=True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Answers before and after fine-tuning")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        # Rows take the height of their wrapped answers again whenever the columns change width (a row sized once,
        # at another width, clips its last lines); a row taller than the view scrolls by pixels, not by rows.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def show_result(self, result: dict | None) -> None:
        """None: the run has no comparison; the view says how to make one."""
        if not result:
            self.summary.setText("No comparison with the base model yet: runs with a validation split make one when "
                                 "they finish, and 'llamadesk-engine eval RUN' makes one for a finished run.")
            self.table.setRowCount(0)
            self.table.hide()
            return
        self.summary.setText(headline(result))
        answers = result.get("answers", [])
        api = result.get("api")
        self.table.setColumnCount(len(COLUMNS) + (1 if api else 0))
        self.table.setHorizontalHeaderLabels(COLUMNS + ((f"{API_COLUMN}: {api['model']}",) if api else ()))
        self.table.setRowCount(len(answers))
        for row, answer in enumerate(answers):
            cells = (answer.get("question") or _prompt_text(answer.get("prompt", "")), answer.get("reference", ""),
                     f"{answer.get('before', '')}\n(ROUGE-L {answer.get('rouge_l_before', 0):.2f})",
                     f"{answer.get('after', '')}\n(ROUGE-L {answer.get('rouge_l_after', 0):.2f})")
            if api:
                cells += (f"{answer['api']}\n(ROUGE-L {answer['rouge_l_api']:.2f})" if "api" in answer else
                          "(not answered)",)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)  # items are plain text: markup in an answer shows as written
                item.setToolTip(text)
                self.table.setItem(row, column, item)
        self.table.setVisible(bool(answers))


def _prompt_text(prompt: str) -> str:
    """The prompt as rendered by the chat template, its special tokens left in: the last user turn is what matters
    to a reader, so the text is cut to its last 300 characters."""
    return prompt if len(prompt) <= 300 else "…" + prompt[-300:]
