"""The loss curves are read from metrics.jsonl in one place: the Train page's chart and the Runs page's comparison
draw the same points, and a line they cannot place (no step, torn by a crash, not a record) is skipped."""

from __future__ import annotations

import json

from engine.light import run_compare
from engine.light.run_folder import RunFolder


def test_train_and_eval_points_by_step_skipping_lines_without_a_place(home):
    folder = RunFolder.create("curves")
    lines = [json.dumps({"step": 1, "loss": 2.0, "elapsed_s": 1.0}),
             json.dumps({"step": 2, "loss": 1.5}),
             json.dumps({"loss": 9.9}),  # no step: nowhere to draw it
             json.dumps({"step": 2, "eval_loss": 1.7}),
             json.dumps({"step": 3, "loss": None, "energy_wh": 0.1}),
             json.dumps([4, 1.0]),  # not a record
             json.dumps({"step": 4, "loss": 1.2, "eval_loss": 1.4}),
             '{"step": 5, "lo']  # torn by a crash
    folder.metrics_file.write_text("\n".join(lines), encoding="utf-8")
    expected = ([(1, 2.0), (2, 1.5), (4, 1.2)], [(2, 1.7), (4, 1.4)])
    assert folder.loss_points() == expected
    assert run_compare.curves(folder) == expected


def test_a_run_without_metrics_has_empty_curves(home):
    folder = RunFolder.create("no-metrics")
    assert folder.loss_points() == run_compare.curves(folder) == ([], [])
