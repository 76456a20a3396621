"""The Chat page: load a finished run's adapter (or a base model alone) in a chat engine and talk to it.

With "Compare with base model" on, each message is answered twice by the same engine, adapter on (left pane) then
adapter off (right pane). Requests go one at a time through a small queue; the engine process belongs to an
EngineClient, so nothing here blocks the UI.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from engine import protocol
from gui import run_store
from gui.app_state import AppState
from gui.engine_client import EngineClient
from gui.widgets.chat_transcript import ChatPane

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(protocol.Chat)}  # one source of truth: the protocol
_SAMPLING = (  # (Chat field, label, minimum, maximum, step, tooltip); a step of 1 means an integer
    ("temperature", "Temperature", 0.0, 2.0, 0.05, ("Randomness of the next-token choice. 0 always picks the most "
                                                    "likely token; higher values give more varied text.")),
    ("top_p", "Top p", 0.0, 1.0, 0.05, ("Nucleus sampling: choose only among the most likely tokens whose "
                                        "probabilities add up to this share. 1 disables it.")),
    ("top_k", "Top k", 0, 1000, 1, "Choose only among the k most likely tokens. 0 disables it."),
    ("max_new_tokens", "Max new tokens", 1, 8192, 1, "The longest reply, in tokens; generation stops there."),
    ("repetition_penalty", "Repetition penalty", 1.0, 2.0, 0.05, ("Makes tokens already in the conversation less "
                                                                   "likely. 1 disables it; 1.1-1.3 curbs loops.")),
)
SHUTDOWN_GRACE_MS = 3_000  # a chat engine has nothing to save; past this it is killed


@dataclass
class _Request:
    pane: ChatPane
    chat: protocol.Chat
    discard: bool = False  # the pane was cleared while it ran: its remaining tokens are dropped


class ChatPage(QWidget):
    """Chat with a fine-tuned adapter, optionally side by side with the base model. Signals: none (it listens to
    its EngineClient's sig_state, sig_log, sig_error, sig_chat_token, sig_chat_done and sig_exited)."""

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self._state = state
        self._ids = itertools.count(1)
        self._queue: deque[_Request] = deque()
        self._current: _Request | None = None
        self._loaded: tuple[str, str] | None = None  # ("run", name) or ("model", reference) given to the engine
        self._ready = False
        self._expect_exit = False  # we asked it to exit (reload, shutdown): not an error
        self._pending_start: tuple[str, str] | None = None  # source to start once the old engine has exited
        self._launch = 0  # counts engine starts, so a late kill timer never hits a newer engine

        self.client = EngineClient(self, command=engine_command)
        self.client.sig_state.connect(self._on_client_state)
        self.client.sig_log.connect(self._on_client_log)
        self.client.sig_error.connect(self._on_client_error)
        self.client.sig_chat_token.connect(self._on_client_chat_token)
        self.client.sig_chat_done.connect(self._on_client_chat_done)
        self.client.sig_exited.connect(self._on_client_exited)
        self._build()
        state.sig_runs_changed.connect(self.refresh)
        state.sig_model_changed.connect(self.refresh)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_app_about_to_quit)
        self.refresh()
        self._update_controls()

    # ---- layout -----------------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.source_combo = QComboBox()
        self.source_combo.setToolTip("A finished run's adapter (newest first), or the base model alone")
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(self._on_load_clicked)
        self.status_label = QLabel("No model loaded.")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)  # shows engine log lines
        self.error_label = QLabel()
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)  # engine messages may contain < and >
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.hide()
        source_row = QHBoxLayout()
        source_row.addWidget(QLabel("Chat with:"))
        source_row.addWidget(self.source_combo, 1)
        source_row.addWidget(self.load_button)
        source_row.addWidget(self.status_label, 1)

        self.compare_box = QCheckBox("Compare with base model")
        self.compare_box.setToolTip("Answer each message twice: with the adapter (left) and without it (right)")
        self.compare_box.toggled.connect(self._on_compare_toggled)
        self.system_edit = QPlainTextEdit()
        self.system_edit.setPlaceholderText("Optional system prompt")
        self.system_edit.setToolTip("Instructions sent as the system message before the conversation")
        self.system_edit.setMaximumHeight(90)
        settings = QWidget()
        settings.setMaximumWidth(340)
        column = QVBoxLayout(settings)
        form = QFormLayout()
        column.addLayout(form)
        column.addStretch(1)  # keep the rows together at the top instead of spreading them out
        form.addRow(self.compare_box)
        form.addRow("System prompt", self.system_edit)
        self.sampling: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for name, label, low, high, step, tip in _SAMPLING:
            box = QSpinBox() if step == 1 else QDoubleSpinBox()
            if step != 1:
                box.setDecimals(2)
                box.setSingleStep(step)
            box.setRange(low, high)
            box.setValue(_DEFAULTS[name])
            box.setToolTip(tip)
            self.sampling[name] = box
            form.addRow(label, box)

        self.left_pane = ChatPane("Fine-tuned")
        self.right_pane = ChatPane("Base")
        self.right_pane.hide()
        splitter = QSplitter()
        for widget in (settings, self.left_pane, self.right_pane):
            splitter.addWidget(widget)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 1)

        self.input_edit = QPlainTextEdit()
        self.input_edit.setPlaceholderText("Type a message; Ctrl+Enter sends it")
        self.input_edit.setMaximumHeight(80)
        self.input_edit.installEventFilter(self)  # Ctrl+Enter while typing, even where shortcuts need focus rules
        self.send_button = QPushButton("Send")
        self.send_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.send_button.setToolTip("Send the message (Ctrl+Enter)")
        self.send_button.clicked.connect(self._on_send_clicked)
        self.stop_button = QPushButton("Stop generation")
        self.stop_button.clicked.connect(self.stop_generation)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Clear both panes and forget the conversation")
        self.clear_button.clicked.connect(self.clear)
        buttons = QVBoxLayout()
        for button in (self.send_button, self.stop_button, self.clear_button):
            buttons.addWidget(button)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input_edit, 1)
        input_row.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.addLayout(source_row)
        layout.addWidget(self.error_label)
        layout.addWidget(splitter, 1)
        layout.addLayout(input_row)

    # ---- sources and loading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """List finished runs with an adapter (newest first) and the current base model; keep the selection."""
        selected = self.source_combo.currentData()
        self.source_combo.clear()
        root = Path(self._state.home) / "runs" if self._state.home else None
        found = run_store.list_runs(root) if root is None or root.is_dir() else []
        for run in found:
            if run.status == "finished" and run.has_adapter:
                detail = " · ".join(part for part in (run.model, run.dataset) if part)
                self.source_combo.addItem(f"{run.name} ({detail})" if detail else run.name, f"run:{run.name}")
        model = self._state.config.model
        self.source_combo.addItem(f"Base model only: {model}", f"model:{model}")
        index = self.source_combo.findData(selected)
        self.source_combo.setCurrentIndex(max(index, 0))

    def select_run(self, name: str) -> bool:
        """Choose a run in the source picker (e.g. from the Runs page); False if it has no finished adapter."""
        self.refresh()
        index = self.source_combo.findData(f"run:{name}")
        if index >= 0:
            self.source_combo.setCurrentIndex(index)
        return index >= 0

    def is_ready(self) -> bool:
        return self._ready

    def is_busy(self) -> bool:
        return self._busy()

    def load(self) -> None:
        """Start a chat engine for the selected source, first ending the one already running."""
        data = self.source_combo.currentData()
        if not data:
            return
        kind, _, name = data.partition(":")  # item data is a "kind:name" string, so findData can match it
        source = (kind, name)
        self._show_error("")
        self._abort_requests("engine restarted")
        self._ready = False
        if self.client.is_running():
            self._pending_start = source
            self.shutdown()
        else:
            self._start(source)
        self._update_controls()

    def _start(self, source: tuple[str, str]) -> None:
        kind, name = source
        self._loaded, self._expect_exit, self._pending_start = source, False, None
        self._launch += 1
        self.left_pane.set_title("Fine-tuned" if kind == "run" else f"Base model: {name}")
        self.status_label.setText(f"Starting the engine for {name}…")
        self.client.start(["chat", "--run" if kind == "run" else "--model", name], home=self._state.home)

    def shutdown(self) -> None:
        """Ask the engine to exit (it has nothing to save); kill it if it has not exited within a few seconds."""
        if not self.client.is_running():
            return
        self._expect_exit = True
        self._ready = False
        if not self.client.send(protocol.Shutdown()):
            self.client.kill()
            return
        launch = self._launch
        QTimer.singleShot(SHUTDOWN_GRACE_MS, self, lambda: self._kill_if_running(launch))

    def _kill_if_running(self, launch: int) -> None:
        if launch == self._launch and self.client.is_running():
            self.client.kill()

    # ---- sending ---------------------------------------------------------------------------------------------

    def _comparing(self) -> bool:
        return self.compare_box.isChecked() and self._loaded is not None and self._loaded[0] == "run"

    def send_message(self, text: str) -> bool:
        """Queue ``text`` for the fine-tuned pane (and the base pane when comparing); False if it cannot go now."""
        text = text.strip()
        if not text or not self._ready or self._busy():
            return False
        self._show_error("")
        on_run = self._loaded[0] == "run"
        targets = [(self.left_pane, "on" if on_run else "off")]
        if self._comparing():
            targets.append((self.right_pane, "off"))
        sampling = {name: box.value() for name, box in self.sampling.items()}
        for pane, adapter in targets:
            pane.transcript.add_user(text)
            chat = protocol.Chat(str(next(self._ids)), pane.transcript.history(),
                                 system=self.system_edit.toPlainText().strip(), adapter=adapter, **sampling)
            self._queue.append(_Request(pane, chat))
        self._pump()
        return True

    def stop_generation(self) -> None:
        """Cancel the running request (the engine confirms with chat_done) and drop the queued ones."""
        self._drop_queue("not sent: generation stopped")
        if self._current is not None:
            self.client.send(protocol.Cancel(self._current.chat.id))
        self._update_controls()

    def clear(self) -> None:
        self.stop_generation()
        if self._current is not None:
            self._current.discard = True
        for pane in (self.left_pane, self.right_pane):
            pane.transcript.clear_conversation()
        self._update_controls()

    def _busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    def _pump(self) -> None:
        if self._current is None and self._queue:
            request = self._queue.popleft()
            if not self.client.send(request.chat):
                request.pane.transcript.abandon_turn("not sent: the engine is not running")
                self._drop_queue("not sent: the engine is not running")
            else:
                self._current = request
                request.pane.transcript.begin_reply()
        self._update_controls()

    def _drop_queue(self, note: str) -> None:
        while self._queue:
            self._queue.popleft().pane.transcript.abandon_turn(note)

    def _abort_requests(self, note: str) -> None:
        self._drop_queue(f"not sent: {note}")
        if self._current is not None:
            if not self._current.discard:
                self._current.pane.transcript.finish_reply(note)
            self._current = None

    # ---- engine events ---------------------------------------------------------------------------------------

    def _on_client_state(self, msg: protocol.State) -> None:
        name = self._loaded[1] if self._loaded else ""
        if msg.state == "loading_model":
            self.status_label.setText(f"Loading {name}…")
        elif msg.state == "ready":
            self._ready = True
            self.status_label.setText(f"Ready: {name}" + (f" ({msg.detail})" if msg.detail else ""))
        elif msg.state == "generating":
            self.status_label.setText(f"Generating with {name}…")
        elif msg.state == "failed":
            self._ready = False
            self.status_label.setText("Loading failed.")
        self._update_controls()

    def _on_client_log(self, msg: protocol.Log) -> None:
        if not self._ready:
            self.status_label.setText(msg.message)  # download and load progress

    def _on_client_error(self, msg: protocol.Error) -> None:
        self._show_error(msg.message + (f"\nHint: {msg.hint}" if msg.hint else ""))

    def _on_client_chat_token(self, msg: protocol.ChatToken) -> None:
        if self._current is not None and msg.id == self._current.chat.id and not self._current.discard:
            self._current.pane.transcript.append_reply(msg.text)

    def _on_client_chat_done(self, msg: protocol.ChatDone) -> None:
        if self._current is None or msg.id != self._current.chat.id:
            return  # a late answer to a request we already gave up on
        if not self._current.discard:
            self._current.pane.transcript.finish_reply(msg.reason)
        self._current = None
        self._pump()

    def _on_client_exited(self, outcome) -> None:
        self._ready = False
        self._abort_requests("the engine stopped")
        if self._pending_start is not None:
            self._start(self._pending_start)
        elif self._expect_exit:
            self.status_label.setText("Engine stopped.")
        elif outcome.crashed or outcome.exit_code:
            code = "crashed" if outcome.exit_code is None else f"exit code {outcome.exit_code}"
            tail = "\n".join(outcome.stderr_tail.splitlines()[-8:])
            shown = self.error_label.text()
            report = f"The chat engine stopped unexpectedly ({code})." + (f"\n{tail}" if tail else "")
            self._show_error(f"{shown}\n\n{report}" if shown else report)
            self.status_label.setText("No model loaded.")
        else:
            self.status_label.setText("The engine exited.")
        self._update_controls()

    # ---- UI state and hooks ----------------------------------------------------------------------------------

    def _on_load_clicked(self) -> None:
        self.load()

    def _on_send_clicked(self) -> None:
        if self.send_message(self.input_edit.toPlainText()):
            self.input_edit.clear()

    def _on_compare_toggled(self, _checked: bool) -> None:
        self._update_controls()

    def _on_app_about_to_quit(self) -> None:
        # The event loop is ending, so the kill timer would never fire: wait briefly here instead.
        if not self.client.is_running():
            return
        self.shutdown()
        if not self.client.wait_for_exit(SHUTDOWN_GRACE_MS):
            self.client.kill()

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def _update_controls(self) -> None:
        busy = self._busy()
        self.send_button.setEnabled(self._ready and not busy)
        self.stop_button.setEnabled(busy)
        # Not while busy: a queued base request must not land in a pane that has just been hidden.
        self.compare_box.setEnabled(self._loaded is not None and self._loaded[0] == "run" and not busy)
        self.right_pane.setVisible(self._comparing())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (watched is self.input_edit and event.type() == QEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self._on_send_clicked()
            return True
        return super().eventFilter(watched, event)

    def showEvent(self, event) -> None:
        self.refresh()
        super().showEvent(event)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
