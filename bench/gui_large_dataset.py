"""The Dataset page on a 1,000,000-row JSONL file: how soon rows show, how far the UI ever stalls.

Opens the file in the real window (offscreen), as a user would, while a 20 ms QTimer heartbeat records how late the
event loop runs. Measures: time until the first rows are in the table, the stall of jumping to the last row (which
indexes the whole file), the stall of scrolling through the table, and the heartbeat while the engine checks the file
in its own process. Usage: QT_QPA_PLATFORM=offscreen python bench/gui_large_dataset.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            handle.write(json.dumps({"instruction": f"question {i + 1}", "input": "",
                                     "output": "an answer of a few words " * (1 + i % 7)}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--check-seconds", type=float, default=20.0, help="how long to watch the running check")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="llamadesk-bigdata-")
    data = Path(home) / "big.jsonl"
    started = time.perf_counter()
    write_rows(data, args.rows)
    print(f"wrote {args.rows:,} rows ({data.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")

    from heartbeat import Heartbeat

    from gui.bootstrap import application, build_window

    app = application()
    window = build_window(home)
    window.show_page("Dataset")
    window.show()
    page = window.dataset_page
    heartbeat = Heartbeat(0.020)
    heartbeat.start()

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    pump(0.3)
    t0 = time.perf_counter()
    page.open_path(data)  # also starts the engine's check in a separate process
    app.processEvents()
    model = page.records
    print(f"open → first rows in the table: {(time.perf_counter() - t0) * 1000:.0f} ms "
          f"({model.rowCount():,} rows indexed so far, first cell {model.data(model.index(0, 0))!r})")
    heartbeat.restart()
    pump(args.check_seconds)
    print(f"heartbeat (20 ms timer) during {args.check_seconds:.0f} s of the running check: {heartbeat.summary()}")

    t0 = time.perf_counter()
    page.select_data_row(args.rows)  # rows count from 1, as in the problem report
    jump = time.perf_counter() - t0
    print(f"jump to row {args.rows:,} (indexes the rest of the file): {jump * 1000:.0f} ms on the UI thread; "
          f"{model.rowCount():,} rows indexed, last cell {model.data(model.index(args.rows - 1, 0))!r}")
    t0 = time.perf_counter()
    for row in range(1, args.rows + 1, args.rows // 200):
        page.select_data_row(row)
        app.processEvents()
    print(f"200 jumps across the file: {(time.perf_counter() - t0) * 1000 / 200:.1f} ms each")
    window.close()


if __name__ == "__main__":
    main()
