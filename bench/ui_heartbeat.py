"""UI responsiveness while a real CPU training runs: lateness of a 50 ms QTimer heartbeat in the GUI process.

Starts the real engine (QLoRA on the demo model and the bundled sample) through EngineClient, exactly as the Train
page does, shows the Train page, and records how late each heartbeat fires while events stream in. Target: the
worst lateness stays under 100 ms. Usage: QT_QPA_PLATFORM=offscreen python bench/ui_heartbeat.py [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("LLAMADESK_HOME", tempfile.mkdtemp(prefix="llamadesk-heartbeat-"))
    from PySide6.QtCore import QTimer

    from engine import demo
    from gui.app import _application, build_window

    app = _application()
    window = build_window(os.environ["LLAMADESK_HOME"])
    window.show_page("Train")
    window.show()
    page = window.train_page
    config = demo.demo_config(**{"train.max_steps": args.steps, "train.logging_steps": 1})
    window.state.set_config(config)
    late: list[float] = []
    interval = 0.050
    last = [time.perf_counter()]

    def beat():
        now = time.perf_counter()
        late.append(max(0.0, now - last[0] - interval))
        last[0] = now

    heartbeat = QTimer(interval=int(interval * 1000))
    heartbeat.timeout.connect(beat)
    events = [0]
    page.client.sig_message.connect(lambda _: events.__setitem__(0, events[0] + 1))
    page.client.sig_exited.connect(lambda outcome: app.quit())
    heartbeat.start()
    page.start()
    app.exec()
    late_ms = sorted(x * 1000 for x in late)
    print(f"engine events received: {events[0]}, heartbeats: {len(late_ms)}")
    print(f"heartbeat lateness: median {statistics.median(late_ms):.1f} ms, "
          f"p99 {late_ms[int(0.99 * (len(late_ms) - 1))]:.1f} ms, max {late_ms[-1]:.1f} ms")


if __name__ == "__main__":
    main()
