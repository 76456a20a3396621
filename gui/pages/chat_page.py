"""The Chat page: talk to a finished run's adapter (or a base model alone), optionally beside an exported GGUF, the
base model and an API model.

The page draws the panes and settings; ``ChatController`` runs the engine and the requests. With "Compare with base
model" on, each message is answered twice by the same engine: adapter on (left pane), then adapter off (right pane).
With an export chosen, ``ExportColumn``'s pane beside the fine-tune gets the same conversation from the GGUF file,
run by llama.cpp in that engine. With "Compare with an API model" on, ``ApiColumn`` sends the same conversation to an
OpenAI-compatible endpoint at the same time (last pane), after asking before the first request that would leave this
computer.

Every signal connection has a receiver that lives no longer than this page (a method of it, or of one of its widgets),
so Qt drops it with the page; ``shutdown()`` stops the engine and the API column and waits for them.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.light.run_folder import list_runs
from gui.api_column import ApiColumn, reply_footer
from gui.app_state import AppState
from gui.chat_controller import EXPORT, LEFT, RIGHT, ChatController, waiting_texts
from gui.export_column import ExportColumn
from gui.widgets.chat_transcript import ChatPane
from gui.widgets.dialogs import ask
from gui.widgets.labels import ElidedLabel, add_row, plain_label
from gui.widgets.sampling_boxes import add_sampling_rows


class ChatPage(QWidget):
    """Chat with a fine-tuned adapter, optionally side by side with the base model. Signals: sig_export_run(str), the
    name of the run chosen in the picker, when the user asks to export it."""

    sig_export_run = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None, *, engine_command: list[str] | None = None):
        super().__init__(parent)
        self._state = state
        self._known_runs: set[str] | None = None  # finished runs at the last refresh; None before the first
        self.controller = ChatController(self, engine_command=engine_command, home=state.home)
        self.client = self.controller.client
        self.api = ApiColumn(self, ask=self._ask_to_send)
        self.export_column = ExportColumn(self.controller, self, self._run_name)
        self.setLayout(QVBoxLayout())
        self.layout().addLayout(self._build_source_row())
        self.layout().addWidget(self.error_label)
        self.layout().addWidget(self._build_conversation(), 1)
        self.layout().addLayout(self._build_input_row())
        self._connect()
        state.sig_runs_changed.connect(self.refresh)
        state.sig_model_changed.connect(self.refresh)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.controller.shutdown_now)
        self.refresh()
        self._update_controls()

    # ---- layout ------------------------------------------------------------------------------------------------
    def _build_source_row(self) -> QHBoxLayout:
        self.source_combo = QComboBox()
        self.source_combo.setToolTip("A finished run's adapter (newest first), or the base model alone")
        self.source_combo.setAccessibleName("Chat with")
        # A long run name must not widen the window: the combo asks for room for 24 characters, its list shows all.
        self.source_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_combo.setMinimumContentsLength(24)
        self.load_button = QPushButton("Load")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Export this run: merged model, GGUF or Ollama, verified against the fine-tune")
        self.export_button.clicked.connect(self._on_export_clicked)
        self.status_label = ElidedLabel()  # load progress can be long: it never widens the window
        self.error_label = plain_label(selectable=True)
        self.error_label.setObjectName("error")  # the theme colours it for the light or dark palette
        self.error_label.hide()
        row = QHBoxLayout()
        row.addWidget(plain_label("Chat with:", wrap=False))
        row.addWidget(self.source_combo, 1)
        row.addWidget(self.load_button)
        row.addWidget(self.export_button)
        row.addWidget(self.status_label, 1)
        return row

    def _build_settings(self) -> QWidget:
        self.compare_box = QCheckBox("Compare with base model")
        self.compare_box.setToolTip("Answer each message twice: with the adapter (left) and without it (right)")
        self.system_edit = QPlainTextEdit()
        self.system_edit.setPlaceholderText("Optional system prompt")
        self.system_edit.setToolTip("Instructions sent as the system message before the conversation")
        self.system_edit.setAccessibleName("System prompt")
        self.system_edit.setMaximumHeight(90)
        settings = QWidget()
        settings.setMaximumWidth(340)
        column = QVBoxLayout(settings)
        form = QFormLayout()
        column.addLayout(form)
        column.addStretch(1)  # keep the rows together at the top instead of spreading them out
        form.addRow(self.compare_box)
        self.api_box = QCheckBox("Compare with an API model")
        self.api_box.setToolTip("Send each message to an OpenAI-compatible model too (OpenAI, or an Ollama, "
                                "llama.cpp or vLLM server), in a third pane")
        self.api_button = QPushButton("API model…")
        self.api_button.setToolTip("The API's address, model and key (kept in the system keyring)")
        self.api_button.clicked.connect(self.choose_api_model)
        form.addRow(self.api_box)
        form.addRow(self.api_button)
        add_row(form, "Exported GGUF", self.export_column.combo)
        form.addRow(self.export_column.browse_button)
        add_row(form, "System prompt", self.system_edit)
        self.sampling = add_sampling_rows(form)
        return settings

    def _build_conversation(self) -> QSplitter:
        self.left_pane = ChatPane("Fine-tuned")
        self.right_pane = ChatPane("Base model", who="Base model")
        self.right_pane.transcript.set_assistant_name("Base model")
        self.right_pane.hide()
        self.api_pane = ChatPane("API model", who="API model")
        self.api_pane.transcript.set_assistant_name("API model")
        self.api_pane.hide()
        self.panes = {LEFT: self.left_pane, EXPORT: self.export_column.pane, RIGHT: self.right_pane}
        splitter = QSplitter()
        for widget in (self._build_settings(), *self.panes.values(), self.api_pane):
            splitter.addWidget(widget)
        for index in range(1, splitter.count()):
            splitter.setStretchFactor(index, 1)
        self.splitter = splitter
        return splitter

    def _share_panes(self) -> None:
        """When a pane appears or goes, the shown conversations get the same width."""
        sizes = self.splitter.sizes()
        panes = range(1, self.splitter.count())
        shown = [i for i in panes if self.splitter.widget(i).isVisibleTo(self)]
        room = sum(sizes[i] for i in panes)
        if shown and room:
            share = room // len(shown)
            self.splitter.setSizes([sizes[0]] + [share if i in shown else 0 for i in panes])

    def _build_input_row(self) -> QHBoxLayout:
        self.input_edit = QPlainTextEdit()
        self.input_edit.setPlaceholderText("Type a message; Ctrl+Enter sends it")
        self.input_edit.setAccessibleName("Message")
        self.input_edit.setMaximumHeight(80)
        self.input_edit.installEventFilter(self)  # Ctrl+Enter while typing, even where shortcuts need focus rules
        self.send_button = QPushButton("Send")
        self.send_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.send_button.setToolTip("Send the message (Ctrl+Enter)")
        self.send_button.setObjectName("primary")
        self.stop_button = QPushButton("Stop generation")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Ask the last message again: its replies are replaced by new ones")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Clear both panes and forget the conversation")
        buttons = QVBoxLayout()
        for button in (self.send_button, self.stop_button, self.regenerate_button, self.clear_button):
            buttons.addWidget(button)
        row = QHBoxLayout()
        row.addWidget(self.input_edit, 1)
        row.addLayout(buttons)
        return row

    def _connect(self) -> None:
        self.load_button.clicked.connect(self.load)
        self.compare_box.toggled.connect(self._on_option_toggled)
        self.api_box.toggled.connect(self._on_option_toggled)
        self.api.sig_started.connect(self.api_pane.transcript.begin_reply)
        self.api.sig_token.connect(self.api_pane.transcript.append_reply)
        self.api.sig_finished.connect(self._on_api_finished)
        self.api.sig_failed.connect(self._on_api_failed)
        self.send_button.clicked.connect(self._on_send_clicked)
        self.stop_button.clicked.connect(self.stop_generation)
        self.regenerate_button.clicked.connect(self.regenerate)
        self.clear_button.clicked.connect(self.clear)
        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        c = self.controller
        c.sig_reply_started.connect(self._on_reply_started)
        c.sig_reply_text.connect(self._on_reply_text)
        c.sig_reply_finished.connect(self._on_reply_finished)
        c.sig_turn_abandoned.connect(self._on_turn_abandoned)
        c.sig_status.connect(self.status_label.setText)
        c.sig_error.connect(self._show_error)
        c.sig_loaded.connect(self._on_controller_loaded)
        c.sig_export_changed.connect(self._update_controls)
        c.sig_controls_changed.connect(self._update_controls)

    # ---- sources -------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List finished runs with an adapter (newest first) and the current base model. The selection is kept,
        except that a run which finished since the last look is selected: it is the one the user wants to try."""
        selected = self.source_combo.currentData()
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        runs = [run for run in list_runs() if run.status == "finished" and run.has_adapter]
        for run in runs:
            detail = " · ".join(part for part in (run.model, run.dataset) if part)
            self.source_combo.addItem(f"{run.name} ({detail})" if detail else run.name, f"run:{run.name}")
        model = self._state.config.model
        self.source_combo.addItem(f"Base model only: {model}", f"model:{model}")
        names = {run.name for run in runs}
        if self._known_runs is not None and runs and runs[0].name not in self._known_runs:
            selected = f"run:{runs[0].name}"  # newest first: a run that just finished
        self._known_runs = names
        index = self.source_combo.findData(selected)
        self.source_combo.setCurrentIndex(max(index, 0))
        self.source_combo.blockSignals(False)
        self.export_button.setEnabled(str(self.source_combo.currentData() or "").startswith("run:"))
        self.export_column.refresh()
        self._update_titles()

    def select_run(self, name: str) -> bool:
        """Choose a run in the source picker (e.g. from the Runs page); False if it has no finished adapter."""
        self.refresh()
        index = self.source_combo.findData(f"run:{name}")
        if index >= 0:
            self.source_combo.setCurrentIndex(index)
        return index >= 0

    def load(self) -> None:
        data = self.source_combo.currentData()
        if data:
            kind, _, name = data.partition(":")  # item data is a "kind:name" string, so findData can match it
            self.controller.load(kind, name)

    def shutdown(self) -> None:
        """Stop the chat engine and the API reply under way; waits (bounded) for the API column's thread, so the
        window can close or delete this page while a reply streams."""
        self.controller.shutdown()
        self.api.shutdown()

    def _on_export_clicked(self) -> None:
        kind, _, name = str(self.source_combo.currentData() or "").partition(":")
        if kind == "run":
            self.sig_export_run.emit(name)

    def is_ready(self) -> bool:
        return self.controller.is_ready()

    def is_busy(self) -> bool:
        return self.controller.is_busy() or self.api.is_busy()

    # ---- conversation ------------------------------------------------------------------------------------------
    def _comparing(self) -> bool:
        return self.compare_box.isChecked() and self.controller.can_compare()

    def _api_comparing(self) -> bool:
        return self.api_box.isChecked() and self.api.configured()

    def _engine_panes(self) -> list[str]:
        """The panes the engine answers: the loaded source, the export beside it, the base model."""
        return [LEFT] + ([EXPORT] if self.export_column.answers() else []) + ([RIGHT] if self._comparing() else [])

    def send_message(self, text: str) -> bool:
        """Send ``text`` to the left pane's model (and the export, the base model and the API model, when shown);
        False if it cannot go now."""
        text = text.strip()
        if not text or not self.controller.is_ready() or self.is_busy():
            return False
        to_api = self._api_comparing() and self.api.allowed()  # asks first when the conversation would leave
        panes = self._engine_panes()
        for pane in panes:
            self.panes[pane].transcript.add_user(text)
        if to_api:
            self.api_pane.transcript.add_user(text)
        elif self._api_comparing():
            self.api_pane.transcript.add_user(text)
            self.api_pane.transcript.abandon_turn(f"not sent: you chose not to send to {self.api.endpoint.host}")
        return self._send(panes, to_api)

    def _send(self, panes: list[str], to_api: bool) -> bool:
        sampling = {name: box.value() for name, box in self.sampling.items()}
        system = self.system_edit.toPlainText().strip()
        sent = self.controller.send({pane: self.panes[pane].transcript.history() for pane in panes},
                                    system=system, sampling=sampling)
        if sent and to_api:
            history = ([{"role": "system", "content": system}] if system else []) + \
                self.api_pane.transcript.history()
            self.api.send(history, temperature=sampling["temperature"], max_tokens=sampling["max_new_tokens"])
        self._update_controls()
        return sent

    def _on_api_finished(self, reply) -> None:
        reason = {"length": "length", "cancelled": "cancelled"}.get(reply.finish_reason or "", "end")
        self.api_pane.transcript.finish_reply(reason, stats=reply_footer(reply))
        self._update_controls()

    def _on_api_failed(self, text: str) -> None:
        # What arrived before the failure stays (a connection closed mid-reply), with the message beneath it.
        self.api_pane.transcript.finish_reply("error", stats="")
        self.api_pane.transcript.abandon_turn(text)  # this column failed; the others carry on
        self._update_controls()

    def _ask_to_send(self, endpoint, question: str) -> bool:
        return ask(self, "Send off this computer?", question)

    # ---- the controller's replies, addressed to a pane by name ------------------------------------------------------
    def _on_reply_started(self, pane: str) -> None:
        self.panes[pane].transcript.begin_reply()

    def _on_reply_text(self, pane: str, text: str) -> None:
        self.panes[pane].transcript.append_reply(text)

    def _on_reply_finished(self, pane: str, reason: str, tokens: int, seconds: float) -> None:
        self.panes[pane].transcript.finish_reply(reason, tokens, seconds)

    def _on_turn_abandoned(self, pane: str, note: str) -> None:
        self.panes[pane].transcript.abandon_turn(note)

    def choose_api_model(self) -> None:
        from gui.api_model_dialog import ApiModelDialog

        dialog = ApiModelDialog(self.api.endpoint, self)
        if dialog.exec() and dialog.endpoint is not None:
            self.api.set_endpoint(dialog.endpoint)
            self.api_box.setChecked(True)
        self._update_controls()

    def stop_generation(self) -> None:
        self.controller.stop_generation()
        self.api.stop()

    def regenerate(self) -> bool:
        """Ask the last user message again in every shown pane, replacing the replies after it."""
        if not self.controller.is_ready() or self.is_busy():
            return False
        # An export loaded after the last message has nothing to ask again: the others still do.
        panes = [pane for pane in self._engine_panes() if pane != EXPORT
                 or self.panes[pane].transcript.last_question() is not None]
        if any(self.panes[pane].transcript.last_question() is None for pane in panes):
            return False
        to_api = (self._api_comparing() and self.api_pane.transcript.last_question() is not None
                  and self.api.allowed())
        for pane in panes:
            self.panes[pane].transcript.retry_last()
        if to_api:
            self.api_pane.transcript.retry_last()
        return self._send(panes, to_api)

    def clear(self) -> None:
        self.controller.clear()
        self.api.stop()
        for pane in (*self.panes.values(), self.api_pane):
            pane.transcript.clear_conversation()

    def _on_send_clicked(self) -> None:
        if self.send_message(self.input_edit.toPlainText()):
            self.input_edit.clear()

    def _on_controller_loaded(self, kind: str, name: str) -> None:
        self._update_titles()

    def _on_source_changed(self, _index: int) -> None:
        self.export_button.setEnabled(str(self.source_combo.currentData() or "").startswith("run:"))
        self._update_titles()

    def _on_option_toggled(self, _checked: bool) -> None:
        self._update_controls()

    def _run_name(self) -> str:
        kind, name = self._source()
        return name if kind == "run" else ""

    def _source(self) -> tuple[str, str]:
        """What the left pane talks to: the loaded source, or before loading, the one chosen in the picker."""
        if self.controller.loaded is not None:
            return self.controller.loaded
        kind, _, name = str(self.source_combo.currentData() or "model:").partition(":")
        return kind, name

    def _update_titles(self) -> None:
        kind, name = self._source()
        if kind == "run":
            self.left_pane.set_title(f"Fine-tuned: {name}")
            self.left_pane.transcript.set_assistant_name("Fine-tuned")
        else:
            self.left_pane.set_title(f"Base model: {name}")
            self.left_pane.transcript.set_assistant_name("Base model")
        hint, empty = waiting_texts(self.controller.is_ready(), self.controller.loaded is not None,
                                    self.source_combo.count() > 1)  # more than the base model: runs to load
        if hint:
            self.status_label.setText(hint)
        self.left_pane.transcript.set_empty_text(empty)
        self.right_pane.transcript.set_empty_text(empty)
        self.export_column.set_empty_text(empty)
        endpoint = self.api.endpoint
        if endpoint is None:
            self.api_pane.set_title("API model: none set up")
            self.api_pane.transcript.set_empty_text("Press \"API model…\" to give an address, a model and a key.")
        else:
            where = "this computer" if endpoint.is_local() else endpoint.host
            self.api_pane.set_title(f"API: {endpoint.model} ({where})")
            self.api_pane.transcript.set_empty_text(empty if endpoint.is_local() else
                                                    f"{empty}\nMessages sent here go to {endpoint.host}; you are "
                                                    "asked before the first one.")

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def _update_controls(self) -> None:
        busy = self.is_busy()
        self.send_button.setEnabled(self.controller.is_ready() and not busy)
        self.stop_button.setEnabled(busy)
        self.regenerate_button.setEnabled(self.controller.is_ready() and not busy
                                          and self.left_pane.transcript.last_question() is not None)
        # Not while busy: a queued base request must not land in a pane that has just been hidden.
        self.compare_box.setEnabled(self.controller.can_compare() and not busy)
        self.api_box.setEnabled(not busy)
        self.export_column.update_controls(not busy)
        changed = False
        shown_panes = ((self.right_pane, self._comparing()), (self.export_column.pane, self.export_column.is_shown()),
                       (self.api_pane, self.api_box.isChecked()))
        for pane, shown in shown_panes:
            if shown != pane.isVisibleTo(self):
                pane.setVisible(shown)
                changed = True
        if changed:
            self._share_panes()
        self._update_titles()

    # ---- Qt hooks ----------------------------------------------------------------------------------------------
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
