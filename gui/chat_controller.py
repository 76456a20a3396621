"""ChatController: the Chat page's engine and its requests, without widgets.

It starts a chat engine for a finished run's adapter (or a base model alone), restarts it for another source, and
sends one request at a time from a small queue. With compare on, each message goes out twice from the same engine:
adapter on for the left pane, adapter off for the right. An exported GGUF file loaded into the same engine
(``load_export``) answers the export pane, run by llama.cpp. Replies stream back as signals addressed to a pane by
name; each finished reply comes with its token count and the time from its first token to its end, for its speed.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.light import protocol
from gui.engine_client import EngineClient
from gui.timers import after

SHUTDOWN_GRACE_MS = 3_000  # a chat engine has nothing to save; past this it is killed
LEFT, RIGHT, EXPORT = "left", "right", "export"
_ADAPTER_FOR_PANE = {RIGHT: "off", EXPORT: "export"}  # the left pane's depends on what the engine loaded


def waiting_texts(ready: bool, loaded: bool, has_runs: bool) -> tuple[str, str]:
    """What the Chat page says while no reply is under way: its status line before anything was loaded ("" once
    something was), and what an empty pane says."""
    status = "" if loaded else ("Choose a run and press Load to chat with it." if has_runs else
                                "No fine-tuned run yet: press Load to chat with the base model alone.")
    empty = ("Type a message below and press Ctrl+Enter." if ready else
             "Choose what to chat with above and press Load." if not loaded else "The model is loading…")
    if ready and not has_runs:
        empty += "\nNo run has finished yet: the Train page fine-tunes one."
    return status, empty


@dataclass
class _Request:
    pane: str
    chat: protocol.Chat
    discard: bool = False  # the pane was cleared while it ran: its remaining tokens are dropped
    first_token_at: float | None = None  # time.monotonic() of the first token
    streamed: int = 0  # tokens received, for an engine that does not count them in chat_done


class ChatController(QObject):
    """Signals: sig_reply_started(pane), sig_reply_text(pane, text), sig_reply_finished(pane, reason, tokens,
    seconds from the first token to the end; 0 and 0.0 when unknown), sig_turn_abandoned(pane, note),
    sig_status(str), sig_error(str) (empty: clear it), sig_loaded(kind, name) when an
    engine starts for a source, sig_export_changed() when an exported GGUF starts or stops loading, or goes away,
    sig_controls_changed()."""

    sig_reply_started = Signal(str)
    sig_reply_text = Signal(str, str)
    sig_reply_finished = Signal(str, str, int, float)
    sig_turn_abandoned = Signal(str, str)
    sig_status = Signal(str)
    sig_error = Signal(str)
    sig_loaded = Signal(str, str)
    sig_export_changed = Signal()
    sig_controls_changed = Signal()

    def __init__(self, parent: QObject | None = None, *, engine_command: list[str] | None = None,
                 home: str | None = None):
        super().__init__(parent)
        self.home = home
        self.client = EngineClient(self, command=engine_command)
        self.client.sig_state.connect(self._on_client_state)
        self.client.sig_log.connect(self._on_client_log)
        self.client.sig_error.connect(self._on_client_error)
        self.client.sig_chat_token.connect(self._on_client_chat_token)
        self.client.sig_chat_done.connect(self._on_client_chat_done)
        self.client.sig_exited.connect(self._on_client_exited)
        self.client.sig_message.connect(self._on_client_message)
        self._ids = itertools.count(1)
        self._queue: deque[_Request] = deque()
        self._current: _Request | None = None
        self.loaded: tuple[str, str] | None = None  # ("run", name) or ("model", reference) given to the engine
        self._ready = False
        self._expect_exit = False  # we asked it to exit (reload, shutdown): not an error
        self._pending_start: tuple[str, str] | None = None  # source to start once the old engine has exited
        self._launch = 0  # counts engine starts, so a late kill timer never hits a newer engine
        self._error = ""
        self.export: protocol.ExportLoaded | None = None  # the exported GGUF the engine answers the export pane with
        self.export_loading = ""  # the path of the GGUF the engine is loading

    # ---- state ---------------------------------------------------------------------------------------------------
    def is_ready(self) -> bool:
        return self._ready

    def is_busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    def can_compare(self) -> bool:
        return self.loaded is not None and self.loaded[0] == "run"

    def can_load_export(self) -> bool:
        return self._ready and not self.is_busy()

    # ---- the engine ------------------------------------------------------------------------------------------------
    def load(self, kind: str, name: str) -> None:
        """Start a chat engine for a run's adapter (``run``) or a base model (``model``), first ending the one
        already running."""
        self._set_error("")
        self.abort("engine restarted")
        self._ready = False
        self._forget_export()  # a new engine starts without one
        if self.client.is_running():
            self._pending_start = (kind, name)
            self.shutdown()
        else:
            self._start((kind, name))
        self.sig_controls_changed.emit()

    def _start(self, source: tuple[str, str]) -> None:
        kind, name = source
        self.loaded, self._expect_exit, self._pending_start = source, False, None
        self._launch += 1
        self.sig_loaded.emit(kind, name)
        self.sig_status.emit(f"Starting the engine for {name}…")
        self.client.start(["chat", "--run" if kind == "run" else "--model", name], home=self.home)

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
        after(self, SHUTDOWN_GRACE_MS, lambda: self._kill_if_running(launch))

    def shutdown_now(self) -> None:
        """The app is quitting and no timer will fire again: ask, wait briefly, then kill."""
        if not self.client.is_running():
            return
        self.shutdown()
        if not self.client.wait_for_exit(SHUTDOWN_GRACE_MS):
            self.client.kill()

    def _kill_if_running(self, launch: int) -> None:
        if launch == self._launch and self.client.is_running():
            self.client.kill()

    # ---- the exported GGUF ---------------------------------------------------------------------------------------
    def load_export(self, path: str) -> bool:
        """Ask the engine to load an exported GGUF file (in place of the one loaded before) to answer the export
        pane. The engine loads it on its own; until it says ready, nothing is sent. False when it cannot go now."""
        if not self.can_load_export() or not self.client.send(protocol.LoadExport(path)):
            return False
        self._set_error("")
        self._ready = False
        self.export, self.export_loading = None, path
        self.sig_status.emit(f"Loading {Path(path).name} in llama.cpp…")
        self.sig_export_changed.emit()
        self.sig_controls_changed.emit()
        return True

    def unload_export(self) -> None:
        """Free the loaded export in the engine; the export pane has nothing to talk to any more."""
        if self.export is not None and not self.is_busy():
            self.client.send(protocol.UnloadExport())
            self._forget_export()
            self.sig_controls_changed.emit()

    def _forget_export(self) -> None:
        if self.export is not None or self.export_loading:
            self.export, self.export_loading = None, ""
            self.sig_export_changed.emit()

    # ---- requests --------------------------------------------------------------------------------------------------
    def send(self, conversations: dict[str, list[dict]], *, system: str, sampling: dict) -> bool:
        """Queue one request per pane (pane name → its conversation, the new user message last). The left pane
        talks to the loaded source; the right one, when given, to the base model alone; the export one to the
        loaded export."""
        if not self._ready or self.is_busy():
            return False
        self._set_error("")
        left = "on" if self.loaded[0] == "run" else "off"
        for pane, messages in conversations.items():
            adapter = left if pane == LEFT else _ADAPTER_FOR_PANE[pane]
            chat = protocol.Chat(str(next(self._ids)), messages, system=system, adapter=adapter, **sampling)
            self._queue.append(_Request(pane, chat))
        self._pump()
        return True

    def stop_generation(self) -> None:
        """Cancel the running request (the engine confirms with chat_done) and drop the queued ones."""
        self._drop_queue("not sent: generation stopped")
        if self._current is not None:
            self.client.send(protocol.Cancel(self._current.chat.id))
        self.sig_controls_changed.emit()

    def clear(self) -> None:
        """Stop, and drop what the running request still streams (the panes are being cleared)."""
        self.stop_generation()
        if self._current is not None:
            self._current.discard = True
        self.sig_controls_changed.emit()

    def abort(self, note: str) -> None:
        self._drop_queue(f"not sent: {note}")
        if self._current is not None:
            if not self._current.discard:
                self.sig_reply_finished.emit(self._current.pane, note, 0, 0.0)
            self._current = None

    def _pump(self) -> None:
        if self._current is None and self._queue:
            request = self._queue.popleft()
            if not self.client.send(request.chat):
                self.sig_turn_abandoned.emit(request.pane, "not sent: the engine is not running")
                self._drop_queue("not sent: the engine is not running")
            else:
                self._current = request
                self.sig_reply_started.emit(request.pane)
        self.sig_controls_changed.emit()

    def _drop_queue(self, note: str) -> None:
        while self._queue:
            self.sig_turn_abandoned.emit(self._queue.popleft().pane, note)

    def _set_error(self, text: str) -> None:
        self._error = text
        self.sig_error.emit(text)

    # ---- engine events -------------------------------------------------------------------------------------------
    def _on_client_state(self, msg: protocol.State) -> None:
        name = self.loaded[1] if self.loaded else ""
        if msg.state == "loading_model":
            self.sig_status.emit(f"Loading {name}…")
        elif msg.state == "ready":
            self._ready = True
            self.sig_status.emit(f"Ready: {name}" + (f" ({msg.detail})" if msg.detail else ""))
        elif msg.state == "generating":
            self.sig_status.emit(f"Generating with {name}…")
        elif msg.state == "loading_export":
            self._ready = False
        elif msg.state == "failed":
            self._ready = False
            self.sig_status.emit("Loading failed.")
        self.sig_controls_changed.emit()

    def _on_client_log(self, msg: protocol.Log) -> None:
        if not self._ready:
            self.sig_status.emit(msg.message)  # download and load progress

    def _on_client_error(self, msg: protocol.Error) -> None:
        text = msg.message + (f"\nHint: {msg.hint}" if msg.hint else "")
        if msg.kind == "export":  # the engine could not load the export; it goes on without one
            self._forget_export()
            text = f"The exported model could not be loaded: {text}"
        self._set_error(text)

    def _on_client_message(self, msg) -> None:
        if isinstance(msg, protocol.ExportLoaded):
            self.export, self.export_loading = msg, ""
            self.sig_export_changed.emit()

    def _on_client_chat_token(self, msg: protocol.ChatToken) -> None:
        request = self._current
        if request is not None and msg.id == request.chat.id and not request.discard:
            if request.first_token_at is None:
                request.first_token_at = time.monotonic()
            request.streamed += 1
            self.sig_reply_text.emit(request.pane, msg.text)

    def _on_client_chat_done(self, msg: protocol.ChatDone) -> None:
        if self._current is None or msg.id != self._current.chat.id:
            return  # a late answer to a request we already gave up on
        request = self._current
        if not request.discard:
            seconds = time.monotonic() - request.first_token_at if request.first_token_at is not None else 0.0
            self.sig_reply_finished.emit(request.pane, msg.reason, msg.tokens or request.streamed, seconds)
        self._current = None
        self._pump()

    def _on_client_exited(self, outcome) -> None:
        self._ready = False
        self.abort("the engine stopped")
        self._forget_export()
        if self._pending_start is not None:
            self._start(self._pending_start)
        elif self._expect_exit:
            self.sig_status.emit("Engine stopped.")
        elif outcome.crashed or outcome.exit_code:
            code = "crashed" if outcome.exit_code is None else f"exit code {outcome.exit_code}"
            tail = "\n".join(outcome.stderr_tail.splitlines()[-8:])
            report = f"The chat engine stopped unexpectedly ({code})." + (f"\n{tail}" if tail else "")
            self._set_error(f"{self._error}\n\n{report}" if self._error else report)
            self.sig_status.emit("No model loaded: press Load to start it again.")
        else:
            self.sig_status.emit("The engine exited.")
        self.sig_controls_changed.emit()
