"""A chat pane: a read-only plain-text transcript of "You:" / "Model:" turns, the conversation history it shows,
and a button that copies the last reply.

Model text is inserted with ``QTextCursor.insertText`` and an empty character format, so markup in a reply
(``<b>``, ``<script>``) is shown literally and can never style or script the view.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from gui.widgets.labels import plain_label

# Why a reply ended (protocol ChatDone.reason) → the note written after it; "end" needs none.
_END_NOTES = {"length": "stopped at the max new tokens limit", "cancelled": "stopped", "error": "error"}


class ChatTranscript(QPlainTextEdit):
    """Read-only transcript that also keeps the history sent with the next request. Signals: none."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setPlaceholderText("The conversation appears here.")
        self._history: list[dict] = []
        self._reply: list[str] | None = None  # the reply being streamed, None between replies
        self._last_reply = ""

    def history(self) -> list[dict]:
        """The conversation so far as alternating user/assistant messages (copies)."""
        return [dict(m) for m in self._history]

    def last_reply(self) -> str:
        return self._last_reply

    def add_user(self, text: str) -> None:
        self._append(("\n" if self._history or not self.document().isEmpty() else "") + f"You: {text}\n")
        self._history.append({"role": "user", "content": text})

    def begin_reply(self) -> None:
        self._append("Model: ")
        self._reply = []

    def append_reply(self, text: str) -> None:
        if self._reply is None:
            return
        self._reply.append(text)
        self._append(text)

    def finish_reply(self, reason: str = "end") -> None:
        """End the streamed reply; ``reason`` is ChatDone.reason, or any short note such as "engine stopped"."""
        if self._reply is None:
            return
        text, self._reply = "".join(self._reply), None
        note = _END_NOTES.get(reason, reason) if reason != "end" else ""
        self._append((f"  ({note})" if note else "") + "\n")
        if text:
            self._history.append({"role": "assistant", "content": text})
            self._last_reply = text
        else:
            self._drop_unanswered()

    def abandon_turn(self, note: str) -> None:
        """The last user message will not be answered (dropped from the queue): say so and forget it."""
        self._append(f"({note})\n")
        self._drop_unanswered()

    def clear_conversation(self) -> None:
        self.clear()
        self._history.clear()
        self._reply, self._last_reply = None, ""

    def _drop_unanswered(self) -> None:
        # The engine expects user/assistant to alternate, so an unanswered user turn leaves the history.
        if self._history and self._history[-1]["role"] == "user":
            self._history.pop()

    def _append(self, text: str) -> None:
        bar = self.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 4  # keep following the stream unless the user scrolled up
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, QTextCharFormat())
        if follow:
            bar.setValue(bar.maximum())


class ChatPane(QWidget):
    """A titled transcript with a Copy button for its last reply. Signals: none."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = plain_label(title, wrap=False)
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # titles may carry a model name
        self.transcript = ChatTranscript()
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy this pane's last reply to the clipboard")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.transcript, 1)

    def set_title(self, title: str) -> None:
        self.title.setText(title)

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.transcript.last_reply())
