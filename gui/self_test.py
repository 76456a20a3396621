"""``llamadesk --self-test``: proves an installation works end to end, without a screen or a person.

It builds the real window offscreen, starts the engine the way the Train page does (the bundled engine, the
engine environment set up on first run, or this Python's), trains two QLoRA steps of the demo model on a slice of the
bundled sample, and writes a JSON report: what ran, on which device, the losses, the adapter, how long it took.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QTimer

import resources
from engine.light import demo_settings, paths, protocol

SAMPLE_ROWS = 16


def run(report_path: Path | None, timeout_s: float = 900) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui.bootstrap import application, build_window
    from gui.engine_client import engine_command

    started = time.monotonic()
    app = application()
    window = build_window(os.environ.get(paths.ENV_HOME))
    page = window.train_page
    data = Path(tempfile.mkdtemp(prefix="llamadesk-selftest-")) / "sample.jsonl"
    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))[:SAMPLE_ROWS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    window.state.set_config(demo_settings.demo_config(**{
        "dataset": str(data), "train.max_steps": 2, "train.logging_steps": 1, "train.save_steps": 2,
        "train.micro_batch": 2, "data.cutoff": 128, "train.compare_base": False,  # the path, not the speed
        "run_name": f"self-test-{time.strftime('%Y%m%d-%H%M%S')}"}))

    report: dict = {"ok": False, "frozen": bool(getattr(sys, "frozen", False)), "engine": engine_command(),
                    "home": str(paths.home()), "losses": [], "states": []}
    _Recorder(report, page, timeout_s)
    page.start()
    if not page.is_busy():
        report["error"] = page.status.text()
    else:
        app.exec()
    adapter = Path(report.get("adapter", "")) / "adapter_model.safetensors"
    report["ok"] = (not report.get("error") and report.get("exit_code") == 0 and len(report["losses"]) == 2
                    and adapter.is_file())
    report["seconds"] = round(time.monotonic() - started, 1)
    if report["ok"] and report.get("run_dir"):
        shutil.rmtree(report["run_dir"], ignore_errors=True)  # a passed check leaves no run behind; a failed one stays
    window.close()
    text = json.dumps(report, indent=2)
    if report_path is not None:
        Path(report_path).write_text(text, encoding="utf-8")
    print(text)
    return 0 if report["ok"] else 1


class _Recorder(QObject):
    """Keeps what the Train page's controller reports in ``report``, and quits the app when the run ends or the
    time is up."""

    def __init__(self, report: dict, page, timeout_s: float):
        super().__init__(page)
        self.report = report
        self._controller = page.controller
        self._controller.sig_message.connect(self._on_message)
        self._controller.sig_ended.connect(self._on_ended)
        QTimer.singleShot(int(timeout_s * 1000), self, self._on_timeout)

    def _on_message(self, msg) -> None:
        _record(self.report, msg)

    def _on_ended(self, end) -> None:
        self.report["exit_code"] = end.exit_code
        if end.crashed:
            self.report["error"] = self.report.get("error") or f"the engine crashed: {end.output_tail[-1500:]}"
        QCoreApplication.quit()

    def _on_timeout(self) -> None:
        self.report["error"] = "timed out"
        self._controller.kill()
        QCoreApplication.quit()


def _record(report: dict, msg) -> None:
    """What the self-test's report keeps of each engine event."""
    if isinstance(msg, protocol.Hello):
        report.update(device=msg.device, engine_version=msg.engine_version)
    elif isinstance(msg, protocol.State):
        report["states"].append(msg.state)
    elif isinstance(msg, protocol.Progress):
        report["losses"].append(msg.loss)
    elif isinstance(msg, protocol.Error):
        report.update(error=f"{msg.kind}: {msg.message}")
    elif isinstance(msg, protocol.Finished):
        report.update(adapter=msg.adapter_path, run_dir=msg.run_dir)
