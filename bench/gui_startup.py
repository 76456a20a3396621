"""Cold start of the desktop app to its first paint, in a fresh Python process each time.

Prints the median of N launches (default 5) of: interpreter start → imports → main window built → first paint
event processed. Run offscreen (QT_QPA_PLATFORM=offscreen) or on a display. Target: <= 1 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = r"""
import time, sys
from PySide6.QtCore import QEvent, QObject, QTimer
from gui.bootstrap import application, build_window
app = application()
window = build_window(sys.argv[1])

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print(f"{time.perf_counter():.6f}", flush=True)
            app.quit()
        return False

probe = FirstPaint()
window.installEventFilter(probe)
window.show()
QTimer.singleShot(10_000, app.quit)
app.exec()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    times = []
    with tempfile.TemporaryDirectory() as home:
        for _ in range(args.runs):
            # perf_counter is CLOCK_MONOTONIC on Linux, so parent and child read the same clock.
            start = __import__("time").perf_counter()
            out = subprocess.run([sys.executable, "-c", PROBE, home], capture_output=True, text=True, env=env,
                                 check=True).stdout.strip().splitlines()
            times.append(float(out[-1]) - start)
    print(f"cold start to first paint: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} launches)")


if __name__ == "__main__":
    main()
