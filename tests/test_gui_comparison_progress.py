"""The Train page after training: the comparison with the base model shows its own progress (answers done, the time
left) and can be skipped; the finish line and the Runs page name the same losses the same way; the Runs page lists a
run as soon as it starts; the page does not jump as lines come and go. Driven by the scripted fake engine."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import psutil

from engine.light import protocol
from gui import progress_text
from tests.test_gui_train_runs_model import _is, state  # noqa: F401 - state is a fixture

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


def _chart_top(page) -> int:
    return page.chart.mapTo(page, page.chart.rect().topLeft()).y()


def test_the_comparison_shows_its_progress_and_skip_ends_it_with_the_adapter(qtbot, state):
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "4", "--delay", "0.02", "--compare", "40",
                                                   "--compare-delay", "0.1"])
    qtbot.addWidget(page)
    page.resize(1300, 900)
    page.show()
    qtbot.waitExposed(page)
    idle_top = _chart_top(page)
    assert not page.skip_button.isVisible()
    with qtbot.waitSignal(page.controller.sig_message, timeout=20_000,
                          check_params_cb=_is(protocol.CompareProgress, stage="answers", done=2)):
        page.start()
    # The bar holds the count and the time left in one line; the status line names the comparison. (Later answers
    # may have arrived with the awaited one: any count of at least 2.)
    shown = re.match(r"(\d+) of 40 answers · ", page.progress.format())
    assert shown and int(shown.group(1)) >= 2, page.progress.format()
    assert page.progress.toolTip().startswith(f"Comparing with the base model: {shown.group(1)} of 40 answers · ")
    assert page.progress.format().endswith(" left") and page.progress.maximum() == 40
    assert page.status.text().startswith("Comparing the fine-tune with the base model")
    assert page.skip_button.isVisible() and page.skip_button.isEnabled()
    assert not page.buttons["Pause"].isEnabled()  # the training is over: nothing left to pause
    assert _chart_top(page) == idle_top, "the skip button and the lines that came did not move the chart"
    logged = page.log.toPlainText()
    assert "Comparing with the base model: 1 of 40 answers" in logged  # each prompt is a progress line of the log

    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000) as ended:
        page.skip_button.click()
        assert not page.skip_button.isEnabled() and page.status.text().startswith("Skipping the comparison")
    assert not ended.args[0].crashed
    logged = page.log.toPlainText()
    received = next(line for line in logged.splitlines() if line.startswith("skip_comparison received after"))
    assert int(received.split()[3]) < 40  # the engine got the command and stopped before the last prompt
    run = page.controller.run_folder.name
    assert page.status.text() == ("Finished: average training loss 1.5 · last 0.75. The comparison with the base "
                                  f"model was skipped; compute it later with 'llamadesk-engine eval {run}'.")
    assert page.progress.format() == "Step 4 of 4 · comparison with the base model skipped"
    assert page.progress.value() == page.progress.maximum() == 4  # the training's steps again
    assert "finished: adapter saved in" in logged and "average training loss 1.5 · last 0.75" in logged
    assert not page.skip_button.isVisible()
    assert _chart_top(page) == idle_top


def test_a_followed_run_is_skipped_through_its_commands_file(qtbot, state, home):
    """A run the window did not start gets the command through its folder, as stop and pause do."""
    from gui.train_controller import TrainController

    folder_dir = home / "runs" / "elsewhere"
    folder_dir.mkdir(parents=True)
    (folder_dir / "config.yaml").write_text("model: demo\ndataset: d.jsonl\n")
    events = [protocol.RunStarted(str(folder_dir)), protocol.State("comparing", "…"),
              protocol.CompareProgress("answers", 1, 8, 70.0, 12.0)]
    (folder_dir / "events.jsonl").write_text("".join(protocol.encode(e) + "\n" for e in events))
    (folder_dir / "lock").write_text(json.dumps({"pid": os.getpid(), "created": psutil.Process().create_time()}))
    controller = TrainController(state)
    from engine.light.run_folder import RunFolder

    assert controller.attach(RunFolder(folder_dir))
    try:
        assert controller.comparing and controller.controls()["Skip comparison"]
        assert controller.last_progress == "Comparing with the base model: 1 of 8 answers · about 1 min left"
        controller.skip_comparison()
        sent = [protocol.decode(line) for line in (folder_dir / "commands.jsonl").read_text().splitlines()]
        assert sent == [protocol.SkipComparison()] and not controller.controls()["Skip comparison"]
    finally:
        (folder_dir / "lock").unlink()
        qtbot.waitUntil(lambda: not controller.is_busy(), timeout=5_000)


def test_the_time_trial_gives_the_first_estimate_until_the_engine_measures_one(qtbot, state):
    from gui.pages.train_page import TrainPage

    page = TrainPage(state, engine_command=FAKE + ["--steps", "2", "--compare", "3", "--compare-delay", "0.05"])
    qtbot.addWidget(page)
    page._timed_config = state.config  # as the Estimate button does when it starts a trial of these settings
    page.time_job.sig_done.emit(protocol.TimeEstimate(900.0, 2, 1.0, {"loading": 60.0, "training": 2.0,
                                                                       "comparison": 630.0}, 40.0))
    assert page.time_label.text().startswith("About 15m00s on this machine (loading 1m00s, training 0m02s, "
                                             "comparison with the base model 10m30s)")
    with qtbot.waitSignal(page.controller.sig_ended, timeout=20_000):
        page.start()
    lines = page.log.toPlainText().splitlines()
    first = next(line for line in lines if line.startswith("Comparing with the base model"))
    assert first.endswith("· about 10 min left (by the time trial)"), first  # 630 s less the time already spent
    assert "Comparing with the base model: 1 of 3 answers · less than a minute left" in lines  # then measured


def test_progress_words():
    assert progress_text.time_left(None) == "" and progress_text.time_left(20) == "less than a minute left"
    assert progress_text.time_left(130) == "about 2 min left" and progress_text.time_left(3 * 3600 + 600) == \
        "about 3 h 10 min left"
    assert progress_text.step_text(12, 1200, 185.0) == "Step 12 of 1,200 · about 3 min left"
    msg = protocol.CompareProgress("answers", 3, 8, 125.0, 80.0)
    assert progress_text.compare_text(msg) == "Comparing with the base model: 3 of 8 answers · about 2 min left"
    assert progress_text.compare_text(msg, trial_s=10_000) == progress_text.compare_text(msg)  # measured wins
    assert progress_text.loss_summary(0.7812, 0.04904) == "average training loss 0.781 · last 0.049"
    assert progress_text.loss_summary(None, 0.5) == "last training loss 0.5"


def _run(home: Path, name: str, events: list, *, running: bool = False) -> Path:
    folder = home / "runs" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: demo\ndataset: /data/facts.jsonl\n")
    (folder / "events.jsonl").write_text("".join(protocol.encode(e) + "\n" for e in events))
    if running:
        (folder / "lock").write_text(json.dumps({"pid": os.getpid(), "created": psutil.Process().create_time()}))
    return folder


def test_the_runs_page_names_the_losses_and_says_so_far_for_a_running_run(qtbot, home, state):
    from gui.pages.runs_page import COLUMNS, RunsPage

    _run(home, "done", [protocol.Progress(53, 54, 1.0, 0.31), protocol.Progress(54, 54, 1.0, 0.049),
                        protocol.Finished(str(home / "runs" / "done"), "adapter", {"train_loss": 0.78,
                                                                                   "last_loss": 0.049}),
                        protocol.State("finished")])
    _run(home, "busy", [protocol.State("training"), protocol.Progress(12, 54, 0.2, 1.234)], running=True)
    page = RunsPage(state)
    qtbot.addWidget(page)
    loss = COLUMNS.index("Last loss")
    cells = {page.table.item(r, 0).text(): page.table.item(r, loss).text() for r in range(page.table.rowCount())}
    assert cells == {"done": "0.049", "busy": "1.23 so far"}
    page.select("done")
    assert "Average training loss 0.78 · last 0.049" in page.detail.text()
    page.select("busy")
    assert "Training loss so far 1.23 (step 12 of 54)" in page.detail.text() and "Final" not in page.detail.text()
    assert "Final loss" not in COLUMNS


def test_the_runs_page_lists_a_run_as_soon_as_it_starts_and_when_shown(qtbot, state, home):
    from gui.pages.runs_page import RunsPage
    from gui.pages.train_page import TrainPage

    runs = RunsPage(state)
    qtbot.addWidget(runs)
    assert runs.body.currentIndex() == 0  # no runs yet
    page = TrainPage(state, engine_command=FAKE + ["--steps", "200", "--delay", "0.05"])
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.controller.sig_message, timeout=20_000, check_params_cb=_is(protocol.RunStarted)):
        page.start()
    assert runs.body.currentIndex() == 1 and runs.table.rowCount() == 1  # no Refresh pressed
    page.controller.stop()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=20_000)
    _run(home, "from-the-command-line", [protocol.State("finished")])
    assert runs.table.rowCount() == 1
    runs.show()
    qtbot.waitExposed(runs)
    assert runs.table.rowCount() == 2


def test_the_chart_keeps_its_legend_off_the_curve_steps_whole_and_one_point_visible(qtbot):
    from gui.widgets.loss_chart import LossChart

    chart = LossChart()
    qtbot.addWidget(chart)
    chart.resize(600, 400)
    chart.show()
    qtbot.waitExposed(chart)
    chart.set_points([(1, 2.0)], [])
    train = chart.curves()["train"]
    assert train.opts["symbol"] == "o" and len(train.scatter.data) == 1  # one step is a dot, not a blank chart
    chart.set_points([(1, 2.0), (2, 1.0), (3, 1.5)], [(3, 1.4)])
    item = chart.plot.getPlotItem()
    item.vb.autoRange()
    qtbot.wait(50)
    legend = chart.legend_item().sceneBoundingRect()
    assert legend.height() > 0 and "training loss" in chart.legend_item().text
    assert not legend.intersects(item.vb.sceneBoundingRect())  # above the plot area, never over the data
    low, high = item.vb.viewRange()[0]
    ticks = [v for _, values in item.getAxis("bottom").tickValues(low, high, 500) for v in values]
    assert ticks and all(float(v).is_integer() for v in ticks) and 2.0 in ticks
    chart.set_points([(s, 1.0 / s) for s in range(1, 200)], [])
    assert train.opts["symbol"] is None  # a long curve is a line
