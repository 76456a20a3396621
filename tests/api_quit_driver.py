"""Quits while the API model streams (run by tests/test_gui_api_quit.py in a process of its own, with
QT_FATAL_WARNINGS=1, so that a Qt warning or a QThread destroyed while running aborts it where the test can see).

The Chat page's API column streams a slow reply and the Runs page's batch comparison streams its first answer, both
from a loopback responder. Then the Chat page is closed and deleted (as a closed window's page), the Runs page only
deleted (as a window destroys its children, without their closeEvent), the event loop runs and gc.collect() follows.
Every page method that the API work calls records whether its page still existed. Prints one JSON line; a test helper,
not a test.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from engine.light import api_chat
from engine.light.api_chat import Endpoint
from engine.light.run_folder import RunFolder
from gui import api_worker
from gui.app_state import AppState
from gui.pages.chat_page import ChatPage
from gui.pages.runs_page import RunsPage
from gui.widgets.chat_transcript import ChatTranscript
from tests.api_responders import Responder, streamed

PIECES = 200  # at 0.1 s each: 20 s a reply, far longer than the test

calls: list[tuple[str, bool]] = []  # (method, whether its object still existed) for every call the API work made


def record(cls, name: str) -> None:
    original = getattr(cls, name)

    def wrapper(self, *args):
        calls.append((f"{cls.__name__}.{name}", shiboken6.isValid(self)))
        return original(self, *args)

    setattr(cls, name, wrapper)


def run_loop(app: QApplication, ms: int) -> None:
    """A running event loop (unlike processEvents, it also carries out deleteLater)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(app: QApplication, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        run_loop(app, 50)
    return bool(condition())


def main() -> None:
    home = Path(sys.argv[1])
    app = QApplication.instance() or QApplication([])
    errors: list[str] = []
    shown, shown_in_thread = sys.excepthook, threading.excepthook  # an exception in a slot or a thread: kept, shown

    def caught(kind, value, tb):
        errors.append(f"{kind.__name__}: {value}")
        shown(kind, value, tb)

    def caught_in_thread(args):
        errors.append(f"{args.exc_type.__name__}: {args.exc_value}")
        shown_in_thread(args)

    sys.excepthook, threading.excepthook = caught, caught_in_thread
    for cls, names in ((ChatTranscript, ("begin_reply", "append_reply", "finish_reply", "abandon_turn")),
                       (ChatPage, ("_on_api_finished", "_on_api_failed", "_update_controls")),
                       (RunsPage, ("_on_api_done", "_on_api_failed", "_on_api_ended", "_on_table_selection"))):
        for name in names:
            record(cls, name)

    handler = streamed(pieces=("word ",) * PIECES, delay_s=0.1)
    responder = Responder(handler)
    endpoint = Endpoint(responder.base_url, "slow")
    api_chat.save_endpoint(endpoint)
    folder = RunFolder.create("compared")
    (folder.path / "config.yaml").write_text("model: demo\ndataset: /data/facts.jsonl\n")
    (folder.path / "events.jsonl").write_text('{"type": "state", "state": "finished"}\n')
    folder.adapter_dir.mkdir()
    (folder.adapter_dir / "adapter_config.json").write_text("{}")
    folder.write_evaluation({"answers": [{"prompt": q, "question": q, "reference": "Paris.", "before": "London",
                                          "after": "Paris"} for q in ("First?", "Second?", "Third?")]})

    chat = ChatPage(AppState(home=str(home)), engine_command=[sys.executable, "-c", "pass"])
    runs = RunsPage(AppState(home=str(home)))
    chat.api_box.setChecked(True)
    assert chat.api.send([{"role": "user", "content": "Say many words."}], temperature=0.0, max_tokens=PIECES)
    assert runs.select("compared") and runs.compare_with_api()
    streaming = wait_for(app, lambda: chat.api_pane.transcript.toPlainText().count("word") >= 3
                         and len(handler.authorization) >= 2, 20)
    pieces_before = chat.api_pane.transcript.toPlainText().count("word")

    quit_started = time.monotonic()
    chat.close()  # its closeEvent shuts it down
    chat.deleteLater()
    runs.deleteLater()  # no closeEvent: deleting its batch job cancels the comparison
    del chat, runs
    run_loop(app, 200)
    gc.collect()
    ended = wait_for(app, lambda: not api_worker.running_threads(), 10)
    quit_s = time.monotonic() - quit_started
    run_loop(app, 1000)  # time for a late signal to arrive, were one still on its way
    gc.collect()
    responder.close()
    print(json.dumps({"streaming": streaming, "pieces_before_quit": pieces_before, "threads_ended": ended,
                      "running_threads": len(api_worker.running_threads()), "quit_s": round(quit_s, 2),
                      "requests": len(handler.authorization), "calls": len(calls),
                      "evaluation_has_api": "api" in (RunFolder(folder.path).evaluation() or {}),
                      "calls_on_deleted": sorted({name for name, alive in calls if not alive}),
                      "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
