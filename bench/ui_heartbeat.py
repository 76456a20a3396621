"""UI responsiveness while a real CPU training runs: lateness of a 50 ms QTimer heartbeat in the GUI process.

Starts the real engine (QLoRA on the demo model and the bundled sample) through the Train page's controller, shows the Train page, and records how late each heartbeat fires while events stream in. Target: the
worst lateness stays under 100 ms. Usage: QT_QPA_PLATFORM=offscreen python bench/ui_heartbeat.py [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("LLAMADESK_HOME", tempfile.mkdtemp(prefix="llamadesk-heartbeat-"))
    from heartbeat import Heartbeat

    from engine.light import demo_settings
    from gui.bootstrap import application, build_window

    app = application()
    window = build_window(os.environ["LLAMADESK_HOME"])
    window.show_page("Train")
    window.show()
    page = window.train_page
    config = demo_settings.demo_config(**{"train.max_steps": args.steps, "train.logging_steps": 1})
    window.state.set_config(config)
    heartbeat = Heartbeat(0.050)
    events = [0]
    page.controller.sig_message.connect(lambda _: events.__setitem__(0, events[0] + 1))
    page.controller.sig_ended.connect(lambda _end: app.quit())
    heartbeat.start()
    page.start()
    app.exec()
    print(f"engine events received: {events[0]}")
    print(f"heartbeat (50 ms timer): {heartbeat.summary()}")

if __name__ == "__main__":
    main()
