"""One message of a conversation: who said it, the text, and for a reply a Copy button and a footer (tokens, speed,
why it stopped).

The text is always plain text: it goes into the document with ``QTextCursor.insertText`` and our own character
formats, never through HTML, so ``<b>``, ``<script>`` or ``<a href=…>`` in a reply show literally and nothing in it
can style the view or become a link. Text between ``` fences is set in a fixed-pitch font.

A streamed reply arrives a token at a time; each token is only queued, and the queue goes into the document at most
every ``FLUSH_MS``, so a long reply costs the UI thread a few small insertions a second, not one per token.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QGuiApplication,
    QPainter,
    QPalette,
    QPen,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from gui.widgets.labels import plain_label

FENCE = "```"
FLUSH_MS = 30  # how long streamed tokens may wait before they are shown: about 30 small updates a second at most
INDENT = 32  # a user's message sits this much to the right of a reply, a reply this much to the left


class FenceSplitter:
    """Splits streamed text into prose and code at ``` fences, also when a fence arrives split across tokens. The
    fences themselves belong to the code, so a copied reply keeps them."""

    def __init__(self) -> None:
        self.in_code = False
        self._held = ""  # one or two trailing backticks that may be the start of a fence

    def feed(self, text: str) -> list[tuple[str, bool]]:
        """(text, is_code) pieces of ``text`` that can be shown now."""
        text, self._held = self._held + text, ""
        trailing = len(text) - len(text.rstrip("`"))
        if 0 < trailing < len(FENCE):
            text, self._held = text[:-trailing], text[-trailing:]
        pieces, start, search = [], 0, 0
        while (at := text.find(FENCE, search)) >= 0:
            end = at + len(FENCE)
            if self.in_code:  # a closing fence ends the code, itself included
                pieces.append((text[start:end], True))
                start = end
            else:  # an opening fence: the prose before it is done
                pieces.append((text[start:at], False))
                start = at
            self.in_code = not self.in_code
            search = end
        pieces.append((text[start:], self.in_code))
        return [(piece, code) for piece, code in pieces if piece]

    def finish(self) -> list[tuple[str, bool]]:
        held, self._held = self._held, ""
        return [(held, self.in_code)] if held else []


def mix(a: QColor, b: QColor, share: float) -> QColor:
    """``a`` with ``share`` of ``b`` blended in: a tint that follows whatever palette is in use."""
    return QColor.fromRgbF(*(x + (y - x) * share for x, y in zip(a.getRgbF()[:3], b.getRgbF()[:3])))


def speed_text(tokens: int, seconds: float) -> str:
    """'42 tokens · 18.3 tok/s'. The time runs from the first token to the end, so the rate counts the tokens after
    the first (the first one's wait is the prompt being read, not generation)."""
    count = f"{tokens} token{'s' if tokens != 1 else ''}"
    if tokens > 1 and seconds > 0:
        return f"{count} · {(tokens - 1) / seconds:.1f} tok/s"
    return count


class MessageBody(QTextEdit):
    """Read-only plain text that grows to fit its content (the conversation scrolls, not the message)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageBody")
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setAcceptRichText(False)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)  # no link is ever followed
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # click to select and copy; Tab moves between the buttons
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setStyleSheet("QTextEdit#messageBody { background: transparent; }")  # the message's tint shows through
        self.viewport().setAutoFillBackground(False)
        for policy in (self.setVerticalScrollBarPolicy, self.setHorizontalScrollBarPolicy):
            policy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self._cursor = QTextCursor(self.document())
        self._prose = QTextCharFormat()
        self._code = QTextCharFormat()
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self._code.setFontFamilies(fixed.families())
        self._code.setFontFixedPitch(True)
        self._splitter = FenceSplitter()
        self._received: list[str] = []  # every piece of text, in order: the message's text
        self._queued: list[str] = []  # received but not yet in the document
        self._timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        self._fit_height()

    def text(self) -> str:
        return "".join(self._received)

    def detach(self) -> None:
        """Before deletion: nothing queued is flushed into a widget being destroyed."""
        self._timer.stop()

    def append(self, text: str) -> None:
        """Queue streamed text; it is shown within ``FLUSH_MS``."""
        self._received.append(text)
        self._queued.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self, *, final: bool = False) -> None:
        self._timer.stop()
        pieces = self._splitter.feed("".join(self._queued))
        self._queued.clear()
        if final:
            pieces += self._splitter.finish()
        for piece, code in pieces:
            self._cursor.insertText(piece, self._code if code else self._prose)
        self._fit_height()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)  # lays the text out for the new width first
        self._fit_height()

    # The height follows the text on insertion and on resize, not through the document's documentSizeChanged signal:
    # Qt emits that while it destroys the document, into a Python slot of a half-destroyed widget (a crash).
    def _fit_height(self) -> None:
        margins = self.contentsMargins()
        height = math.ceil(self.document().size().height()) + margins.top() + margins.bottom()
        if height != self.height():
            self.setFixedHeight(height)

    def contextMenuEvent(self, event) -> None:
        menu = self.createStandardContextMenu(event.pos())
        menu.addSeparator()
        menu.addAction("Copy message", lambda: QGuiApplication.clipboard().setText(self.text()))
        menu.exec(event.globalPos())
        menu.deleteLater()


class MessageView(QFrame):
    """A message in a tinted frame: ``role`` is "user" or "assistant", ``name`` what the header calls the speaker.
    A reply has a Copy button and a muted footer. ``in_history`` says whether the message is part of the conversation
    sent with the next request (an unanswered question or an empty reply is shown but not sent)."""

    def __init__(self, role: str, name: str, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.name = name
        self.note = ""
        self.in_history = role == "user"
        self.streaming = False
        self.name_label = plain_label(name, wrap=False)
        font = self.name_label.font()
        font.setBold(True)
        self.name_label.setFont(font)
        self.body = MessageBody()
        self.body.setAccessibleName(f"Message from {name}")
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.name_label, 1)
        self.copy_button: QPushButton | None = None
        self.footer = plain_label()
        self.footer.setObjectName("muted")
        self.footer.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = self.footer.font()
        small.setPointSizeF(small.pointSizeF() * 0.85)
        self.footer.setFont(small)
        self.footer.hide()
        if role == "assistant":
            self.copy_button = QPushButton("Copy")
            self.copy_button.setFlat(True)
            self.copy_button.setToolTip("Copy this reply to the clipboard")
            self.copy_button.setAccessibleName(f"Copy this reply from {name}")
            self.copy_button.clicked.connect(self.copy)
            self.copy_button.setEnabled(bool(text))  # a reply still waiting for its first token has nothing to copy
            header.addWidget(self.copy_button)
        left, right = (INDENT, 0) if role == "user" else (0, INDENT)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(left + 10, 6, right + 10, 6)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.body)
        layout.addWidget(self.footer)
        self._bubble_margins = (left, right)
        if text:
            self.body.append(text)
            self.body.flush(final=True)

    def text(self) -> str:
        return self.body.text()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def detach(self) -> None:
        self.body.detach()

    def start_streaming(self) -> None:
        self.streaming = True
        self.set_footer("generating…")

    def append(self, text: str) -> None:
        self.body.append(text)
        if text and self.copy_button is not None and not self.copy_button.isEnabled():
            self.copy_button.setEnabled(True)

    def finish(self, note: str = "", stats: str = "") -> None:
        """Show everything received, then the footer: speed and why it stopped, if not at its natural end."""
        self.body.flush(final=True)
        self.streaming = False
        self.note = note
        self.set_footer(" · ".join(part for part in (stats, note) if part))

    def set_footer(self, text: str) -> None:
        self.footer.setText(text)
        self.footer.setVisible(bool(text))

    def background(self) -> QColor:
        """The message's tint, from the palette in use: the accent over the base for the user, the alternate base
        for a reply, so both read as distinct in light and dark palettes alike."""
        palette = self.palette()
        base = palette.color(QPalette.ColorRole.Base)
        if self.role == "user":
            return mix(base, palette.color(QPalette.ColorRole.Highlight), 0.14)
        return palette.color(QPalette.ColorRole.AlternateBase)

    def paintEvent(self, event) -> None:
        palette = self.palette()
        border = (mix(palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Highlight), 0.35)
                  if self.role == "user" else palette.color(QPalette.ColorRole.Mid))
        left, right = self._bubble_margins
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(border, 1))
        painter.setBrush(self.background())
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(left + 0.5, 0.5, -right - 0.5, -0.5), 8, 8)
