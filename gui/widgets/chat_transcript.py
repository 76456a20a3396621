"""A chat pane: the conversation as a scrolling column of messages (``MessageView``), the history it sends with the
next request, what it says while empty, and a button that copies the last reply.

The history is read from the messages themselves, so what is sent is always what is shown: a question that got no
answer (stopped before its first token, never sent) stays on screen but leaves the history, because the engine
expects user and assistant turns to alternate.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from gui.widgets.chat_message import MessageView, speed_text
from gui.widgets.labels import ElidedLabel, plain_label

# Why a reply ended (protocol ChatDone.reason) → the note shown with it; "end" needs none.
_END_NOTES = {"length": "stopped at the max new tokens limit", "cancelled": "stopped", "error": "error"}


class ChatTranscript(QScrollArea):
    """The messages of one pane, newest at the bottom; it follows a streaming reply unless the user scrolled up.
    Signals: sig_changed() when a message comes, ends or goes."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # messages wrap instead
        self.setBackgroundRole(QPalette.ColorRole.Base)
        content = QWidget()
        content.setBackgroundRole(QPalette.ColorRole.Base)
        self._column = QVBoxLayout(content)
        self._column.setSpacing(8)
        self.empty_label = plain_label("The conversation appears here.")
        self.empty_label.setObjectName("muted")
        self.empty_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._column.addWidget(self.empty_label)
        self._column.addStretch(1)  # messages gather at the top
        self.setWidget(content)
        self._rows: list[QWidget] = []  # messages and notices, in order
        self._reply: MessageView | None = None  # the reply being streamed
        self._assistant_name = "Model"
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_scroll_range_changed)

    def _on_scrolled(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - 4  # at the bottom: keep following new text

    def _on_scroll_range_changed(self, _low: int, high: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(high)

    # ---- what it holds -----------------------------------------------------------------------------------------
    def messages(self) -> list[MessageView]:
        return [row for row in self._rows if isinstance(row, MessageView)]

    def history(self) -> list[dict]:
        """The conversation sent with the next request: alternating user/assistant messages."""
        return [{"role": m.role, "content": m.text()} for m in self.messages() if m.in_history]

    def last_reply(self) -> str:
        replies = [m for m in self.messages() if m.role == "assistant" and m.in_history]
        return replies[-1].text() if replies else ""

    def last_question(self) -> str | None:
        questions = [m for m in self.messages() if m.role == "user"]
        return questions[-1].text() if questions else None

    def toPlainText(self) -> str:
        """The conversation as text: "name: message" per message, a reply's note in brackets, notices as shown."""
        lines = []
        for row in self._rows:
            if isinstance(row, MessageView):
                lines.append(f"{row.name}: {row.text()}" + (f"  ({row.note})" if row.note else ""))
            else:
                lines.append(row.text())
        return "\n".join(lines)

    # ---- changes -------------------------------------------------------------------------------------------------
    def set_assistant_name(self, name: str) -> None:
        """What the next replies are headed with ("Fine-tuned", "Base model")."""
        self._assistant_name = name

    def set_empty_text(self, text: str) -> None:
        self.empty_label.setText(text)

    def add_user(self, text: str) -> None:
        self._follow = True  # sending a message brings the conversation's end into view
        self._add(MessageView("user", "You", text))

    def begin_reply(self) -> None:
        self._reply = MessageView("assistant", self._assistant_name)
        self._reply.start_streaming()
        self._add(self._reply)

    def append_reply(self, text: str) -> None:
        if self._reply is not None:
            self._reply.append(text)

    def finish_reply(self, reason: str = "end", tokens: int = 0, seconds: float = 0.0, stats: str | None = None) -> None:
        """End the streamed reply; ``reason`` is ChatDone.reason, or any short note such as "engine stopped";
        ``stats`` replaces the speed footer (an API reply's latency, tokens and cost)."""
        if self._reply is None:
            return
        reply, self._reply = self._reply, None
        note = _END_NOTES.get(reason, reason) if reason not in ("end", "stop") else ""
        reply.finish(note, stats if stats is not None else speed_text(tokens, seconds) if tokens else "")
        reply.in_history = bool(reply.text())
        if not reply.in_history:
            self._drop_unanswered()
        self.sig_changed.emit()

    def abandon_turn(self, note: str) -> None:
        """The last user message will not be answered (dropped from the queue): say so and leave it out."""
        self._add(self._notice(f"({note})"))
        self._drop_unanswered()
        self.sig_changed.emit()

    def retry_last(self) -> str | None:
        """Remove everything after the last user message and return it, to be asked again; None if there is none."""
        users = [i for i, row in enumerate(self._rows) if isinstance(row, MessageView) and row.role == "user"]
        if not users:
            return None
        question = self._rows[users[-1]]
        for row in self._rows[users[-1] + 1:]:
            self._remove(row)
        del self._rows[users[-1] + 1:]
        question.in_history = True
        self._reply = None
        self.sig_changed.emit()
        return question.text()

    def clear_conversation(self) -> None:
        for row in self._rows:
            self._remove(row)
        self._rows.clear()
        self._reply = None
        self.empty_label.show()
        self.sig_changed.emit()

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def _add(self, row: QWidget) -> None:
        self._column.insertWidget(self._column.count() - 1, row)  # above the closing stretch
        self._rows.append(row)
        self.empty_label.hide()
        if isinstance(row, MessageView) and row.copy_button is not None:
            # Keep Tab in reading order: this pane, its replies' Copy buttons top to bottom, then what follows.
            earlier = [m.copy_button for m in self.messages()[:-1] if m.copy_button is not None]
            QWidget.setTabOrder(earlier[-1] if earlier else self, row.copy_button)
        self.sig_changed.emit()

    def _remove(self, row: QWidget) -> None:
        if isinstance(row, MessageView):
            row.detach()
        self._column.removeWidget(row)
        row.hide()
        row.deleteLater()

    def _notice(self, text: str) -> QLabel:
        label = plain_label(text)
        label.setObjectName("muted")
        label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        return label

    def _drop_unanswered(self) -> None:
        users = [m for m in self.messages() if m.role == "user"]
        if users and users[-1].in_history and not self._answered(users[-1]):
            users[-1].in_history = False

    def _answered(self, question: MessageView) -> bool:
        after = self.messages()[self.messages().index(question) + 1:]
        return any(m.role == "assistant" and m.in_history for m in after)


class ChatPane(QWidget):
    """A titled conversation with a button that copies its last reply. ``who`` names the pane for assistive
    technology ("" for the main one, "Base model" for the comparison). Signals: none."""

    def __init__(self, title: str, who: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        # Titles carry a run or model name, which may be long: cut in the middle, as run names differ at their ends.
        self.title = ElidedLabel(title, mode=Qt.TextElideMode.ElideMiddle)
        self.transcript = ChatTranscript()
        self.transcript.setAccessibleName(f"{who} conversation" if who else "Conversation")
        self.copy_button = QPushButton("Copy last reply")
        self.copy_button.setToolTip("Copy this pane's last reply to the clipboard")
        self.copy_button.setAccessibleName(f"Copy the last {who.lower()} reply" if who else "Copy the last reply")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.copy_button.setEnabled(False)  # until there is a reply to copy
        self.transcript.sig_changed.connect(self._on_transcript_changed)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.transcript, 1)
        QWidget.setTabOrder(self.copy_button, self.transcript)

    def set_title(self, title: str) -> None:
        self.title.setText(title)  # cut with "…" when long, the whole title in its tooltip

    def _on_transcript_changed(self) -> None:
        self.copy_button.setEnabled(bool(self.transcript.last_reply()))

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.transcript.last_reply())
