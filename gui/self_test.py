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

import resources

SAMPLE_ROWS = 16


def run(report_path: Path | None, timeout_s: float = 900) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer

    from engine import demo, paths
    from gui.app import _application, build_window
    from gui.engine_client import engine_command

    started = time.monotonic()
    app = _application()
    window = build_window(os.environ.get(paths.ENV_HOME))
    page = window.train_page
    data = Path(tempfile.mkdtemp(prefix="llamadesk-selftest-")) / "sample.jsonl"
    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))[:SAMPLE_ROWS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    window.state.set_config(demo.demo_config(**{
        "dataset": str(data), "train.max_steps": 2, "train.logging_steps": 1, "train.save_steps": 2,
        "train.micro_batch": 2, "data.cutoff": 128,  # small steps: this checks the path, not the speed
        "run_name": f"self-test-{time.strftime('%Y%m%d-%H%M%S')}"}))

    report: dict = {"ok": False, "frozen": bool(getattr(sys, "frozen", False)), "engine": engine_command(),
                    "home": str(paths.home()), "losses": [], "states": []}
    page.client.sig_hello.connect(lambda m: report.update(device=m.device, engine_version=m.engine_version))
    page.client.sig_state.connect(lambda m: report["states"].append(m.state))
    page.client.sig_progress.connect(lambda m: report["losses"].append(m.loss))
    page.client.sig_error.connect(lambda m: report.update(error=f"{m.kind}: {m.message}"))
    page.client.sig_finished.connect(lambda m: report.update(adapter=m.adapter_path, run_dir=m.run_dir))

    def exited(outcome) -> None:
        report["exit_code"] = outcome.exit_code
        if outcome.crashed:
            report["error"] = report.get("error") or f"the engine crashed: {outcome.stderr_tail[-1500:]}"
        app.quit()

    page.client.sig_exited.connect(exited)
    QTimer.singleShot(int(timeout_s * 1000), lambda: (report.update(error="timed out"), page.client.kill(),
                                                      app.quit()))
    page.start()
    if not page.client.is_running():
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
