"""The design's pieces: numbers as people write them, the guided path, the sidebar's states, a log that keeps one line
per progress bar, the loss chart's legend and smoothing, the Runs page's sorting, filter and empty state, Ctrl+Q."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from engine.light.units import plain_number
from gui import guide
from gui.app_state import AppState

FAKE = [sys.executable, str(Path(__file__).with_name("fake_engine.py"))]


@pytest.mark.parametrize("value, text", [(3.0, "3"), (1024, "1,024"), (0.05, "0.05"), (0.0002, "0.0002"),
                                         (2e-5, "2e-5"), (1.5e-6, "1.5e-6"), (0.1 + 0.2, "0.3"), (-1.0, "-1")])
def test_numbers_read_as_people_write_them(value, text):
    assert plain_number(value) == text


def test_number_box_shows_plain_numbers_and_accepts_either_form(qtbot):
    from gui.widgets.number_box import NumberBox

    box = NumberBox()
    qtbot.addWidget(box)
    box.setRange(0, 10)
    box.setSuffix(" epochs")
    box.setValue(3)
    assert box.text() == "3 epochs"
    for typed, value in (("2e-4", 2e-4), ("0.0002", 2e-4), ("1.5 epochs", 1.5)):
        box.lineEdit().setText(typed)
        box.interpretText()
        assert box.value() == pytest.approx(value), typed
    box.lineEdit().setText("lots")
    box.interpretText()
    assert box.value() == pytest.approx(1.5)  # nonsense leaves the value alone


def walk(**changes) -> guide.Facts:
    return guide.Facts(**{"model": "demo", **changes})


def test_the_guide_walks_engine_model_dataset_train_chat():
    path = [
        (walk(engine_needs_setup=True), "Engine", ""),
        (walk(model=""), "Model", ""),
        (walk(), "Dataset", "use_sample"),
        (walk(dataset="/d/a.jsonl"), "Dataset", "check"),
        (walk(dataset="/d/a.jsonl", dataset_rows=0), "Dataset", ""),
        (walk(dataset="/d/a.jsonl", dataset_rows=300), "Train", "start"),
        (walk(dataset="/d/a.jsonl", dataset_rows=300, training="step 3/60"), "Train", ""),
        (walk(dataset="/d/a.jsonl", dataset_rows=300, finished_runs=("r1",)), "Chat", "chat"),
    ]
    for facts, page, action in path:
        upcoming = guide.next_step(facts)
        assert (upcoming.page, upcoming.action) == (page, action), facts
    assert guide.next_step(walk(dataset="/d/a.jsonl", dataset_rows=300, finished_runs=("r1",), chatted=True)) is None
    states = guide.steps(walk(dataset="/d/a.jsonl", dataset_rows=1300, finished_runs=("r2", "r1"), runs=3))
    assert states["Dataset"] == guide.Step("Dataset", "1,300 rows · a.jsonl", guide.DONE)
    # A finished run is there to try, not yet tried: the sidebar does not call Chat done before a model is loaded.
    assert states["Train"].text == "finished: r2" and states["Chat"] == guide.Step("Chat", "to try · r2", guide.TODO)
    chatted = guide.steps(walk(dataset="/d/a.jsonl", dataset_rows=1, finished_runs=("r2",), chatted=True))
    assert chatted["Chat"] == guide.Step("Chat", "tried · r2", guide.DONE)
    training = guide.steps(walk(dataset="/d/a.jsonl", training="Step 3 of 60 · about 2 min left"))["Train"]
    assert training == guide.Step("Train", "Step 3 of 60", guide.BUSY)  # the time left is on the Train page
    comparing = guide.next_step(walk(dataset="/d/a.jsonl", dataset_rows=3,
                                     training="Comparing with the base model: 1 of 8 answers"))
    assert comparing.text == "Comparing with the base model: 1 of 8 answers. Chat with the result when it ends."
    checking = guide.steps(walk(dataset="/d/a.jsonl", dataset_checking=True))["Dataset"]
    assert checking == guide.Step("Dataset", "checking · a.jsonl", guide.BUSY)
    assert states["Runs"].text == "3 runs"
    assert guide.steps(walk(dataset="/d/a.jsonl", dataset_problem="bad"))["Dataset"].mark == guide.ATTENTION


def test_log_keeps_one_line_per_progress_bar(qtbot):
    from gui.widgets.log_view import LogView

    log = LogView()
    qtbot.addWidget(log)
    lines = ["Preparing the demo model",
             *[f"Converting and de-quantizing GGUF tensors...: {p}%|#  | {p * 272 // 100}/272" for p in (1, 14, 58)],
             "model.safetensors: 10%", "model.safetensors: 100%",
             "data: 300 rows, 12 skipped", "data: 300 rows, 12 skipped",  # ordinary lines all stay
             "step 3/60 loss 2.1 was logged by the trainer with these words"]
    for line in lines:
        log.add_line(line)
    assert log.toPlainText().splitlines() == [
        "Preparing the demo model", lines[3], "model.safetensors: 100%", "data: 300 rows, 12 skipped",
        "data: 300 rows, 12 skipped", lines[-1]]


def test_the_chart_has_a_legend_only_for_what_it_draws_and_a_smoothed_curve(qtbot):
    from gui.widgets.loss_chart import LossChart, smoothed

    chart = LossChart()
    qtbot.addWidget(chart)
    chart.show()
    chart.set_points([(1, 2.0), (2, 1.0), (3, 1.5)], [])
    chart._repaint()
    assert chart.legend_names() == ["train"]  # no evaluation, no "eval" entry
    chart.add_eval(3, 1.4)
    chart.set_smoothed(True)
    assert chart.legend_names() == ["train", "smoothed", "eval"]
    averaged = [loss for _, loss in smoothed([(1, 2.0), (2, 1.0), (3, 1.5)], weight=0.5)]
    assert averaged == pytest.approx([2.0, (0.25 * 2 + 0.5 * 1.0) / 0.75, (0.125 * 2 + 0.25 * 1 + 0.5 * 1.5) / 0.875])


def _runs_page(home):
    from gui.pages.runs_page import RunsPage

    return RunsPage(AppState(str(home)))


def make_run(home: Path, name: str, model: str, loss: float, age_days: int) -> None:
    folder = home / "runs" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model: {model}\ndataset: /data/{name}.jsonl\n")
    (folder / "events.jsonl").write_text(
        f'{{"type": "progress", "step": 10, "total_steps": 10, "epoch": 1.0, "loss": {loss}}}\n'
        '{"type": "state", "state": "finished"}\n')
    stamp = time.time() - age_days * 86400  # a run's start is its config's time
    os.utime(folder / "config.yaml", (stamp, stamp))


def test_runs_sort_filter_and_empty_state(qtbot, home):
    page = _runs_page(home)
    qtbot.addWidget(page)
    assert page.body.currentIndex() == 0  # the empty state, with its way forward
    with qtbot.waitSignal(page.sig_show_page) as shown:
        page.body.currentWidget().findChild(type(page.buttons["Resume"]), "primary").click()
    assert shown.args == ["Train"]
    make_run(home, "beta", "demo", 0.9, 2)
    make_run(home, "alpha", "llama-3.2-1b", 1.7, 1)
    make_run(home, "gamma", "demo", 0.4, 3)
    page.refresh()
    assert page.body.currentIndex() == 1

    def column(name):
        index = ("Run", "Status", "Model", "Dataset", "Steps", "Final loss").index(name)
        return [page.table.item(r, index).text() for r in range(page.table.rowCount())
                if not page.table.isRowHidden(r)]

    assert column("Run") == ["alpha", "beta", "gamma"]  # newest first
    page.table.sortByColumn(5, Qt.SortOrder.AscendingOrder)
    assert column("Run") == ["gamma", "beta", "alpha"]  # by the loss as a number
    page.select("beta")
    page.filter_edit.setText("demo")
    assert column("Run") == ["gamma", "beta"] and page.selected().name == "beta"
    page.refresh()  # a refresh keeps the sort, the filter and the selection
    assert column("Run") == ["gamma", "beta"] and page.selected().name == "beta"
    page.status_combo.setCurrentText("failed")
    assert column("Run") == []


def test_ctrl_q_closes_the_window_and_the_sidebar_shows_each_step(qtbot, home, tmp_path):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.instance().setOrganizationName("LlamaDesk-tests")
    from gui.main_window import MainWindow

    window = MainWindow(AppState(str(home)), engine_command=FAKE)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.sidebar.state("Model")[1] == guide.DONE and window.sidebar.state("Dataset")[1] == guide.TODO
    window.show_page("Train")
    header = window.headers["Train"]
    assert "Next:" in header.next_label.text() and header.next_button.text() == "Go to Dataset"
    header.next_button.click()
    assert window.current_page() is window.dataset_page
    assert any(a.shortcut() == QKeySequence("Ctrl+Q") for a in window.actions())
    with qtbot.waitActive(window):  # shortcuts go to the active window
        window.activateWindow()
    qtbot.keyClick(window.dataset_page, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)


def test_the_memory_estimate_follows_the_datasets_longest_row(qtbot, home):
    from gui.pages.train_page import TrainPage

    state = AppState(str(home))
    state.update({"model": "llama-3.2-1b", "dataset": "/data/a.jsonl", "data.cutoff": 2048})
    page = TrainPage(state, engine_command=FAKE)
    qtbot.addWidget(page)
    at_cutoff = page.memory_panel.report.estimate.total
    assert "longest row" not in page.memory_panel.verdict.text()
    state.set_longest_row("/data/a.jsonl", "llama-3.2-1b", 300)  # what the Dataset page's check measured
    report = page.memory_panel.report
    assert report.data_sequence == 300 and report.worst_case_bytes == at_cutoff
    assert report.estimate.total < at_cutoff
    assert "its longest row: 300 tokens" in page.memory_panel.verdict.text()
    state.update({"train.padding_free": False})  # padded batches: the cutoff is what every batch costs
    assert page.memory_panel.report.worst_case_bytes is None
    assert "longest row" not in page.memory_panel.verdict.text()


def test_a_zero_that_switches_something_off_says_so(qtbot):
    from gui.widgets.config_form import ConfigForm

    form = ConfigForm.for_group("basic")
    qtbot.addWidget(form)
    steps = form.widgets["train.max_steps"]
    steps.setValue(0)
    assert steps.text() == "by epochs"
    steps.setValue(1200)
    assert steps.text() == "1,200 steps"
    assert form.widgets["data.cutoff"].text().endswith("tokens")


def test_the_runs_page_shows_a_runs_comparison_with_the_base_model(qtbot, home):
    from engine.light.run_folder import RunFolder

    make_run(home, "tuned", "demo", 0.4, 1)
    folder = RunFolder(home / "runs" / "tuned")
    (folder.adapter_dir).mkdir()
    (folder.adapter_dir / "adapter_config.json").write_text("{}")
    page = _runs_page(home)
    qtbot.addWidget(page)
    page.select("tuned")
    assert "No comparison with the base model yet" in page.comparison.summary.text()
    folder.write_evaluation({
        "validation_rows": 15, "before": {"loss": 2.41, "perplexity": 11.13, "rouge_l": 0.18},
        "after": {"loss": 0.63, "perplexity": 1.88, "rouge_l": 0.71},
        "answers": [{"prompt": "<|im_start|>user\nWho keeps the light?<|im_end|>\n<|im_start|>assistant\n",
                     "question": "Who keeps the light?",
                     "reference": "Orla Penhallow.", "before": "<b>A keeper</b>", "after": "Orla Penhallow.",
                     "rouge_l_before": 0.0, "rouge_l_after": 1.0}]})
    page.refresh()
    assert page.comparison.summary.text() == ("Base model → fine-tuned: validation loss 2.41 → 0.63 · perplexity "
                                              "11.1 → 1.9 · ROUGE-L 0.18 → 0.71 (on 15 validation rows)")
    cells = [page.comparison.table.item(0, c).text() for c in range(4)]
    assert cells[0] == "Who keeps the light?"  # the user's turn, not the rendered template
    assert cells[1] == "Orla Penhallow." and cells[2].startswith("<b>A keeper</b>")  # shown as written
    assert cells[3] == "Orla Penhallow.\n(ROUGE-L 1.00)"


def test_tracking_is_chosen_with_checkboxes_and_says_how_to_open_the_records(qtbot, home):
    from gui.pages.train_page import TrainPage
    from gui.widgets.config_form import ChoiceBoxes

    state = AppState(str(home))
    page = TrainPage(state, engine_command=FAKE)
    qtbot.addWidget(page)
    boxes = page.run_form.widgets["train.report_to"]
    assert isinstance(boxes, ChoiceBoxes) and list(boxes.boxes) == ["tensorboard", "mlflow", "wandb"]
    assert not page.tracking_label.isVisibleTo(page)
    boxes.boxes["tensorboard"].setChecked(True)
    boxes.boxes["mlflow"].setChecked(True)
    qtbot.waitUntil(lambda: state.config.train.report_to == ["tensorboard", "mlflow"], timeout=3_000)
    text = page.tracking_label.text()
    assert f"tensorboard --logdir {home / 'runs'}" in text and "mlflow ui --backend-store-uri file://" in text
    state.update({"train.report_to": []})  # from elsewhere (a loaded YAML): the boxes follow
    assert boxes.chosen() == [] and not page.tracking_label.isVisibleTo(page)


def test_compare_overlays_the_runs_and_lists_what_differs(qtbot, home):
    from engine.light.run_folder import RunFolder

    for name, rank, rate, age in (("rank8", 8, 0.0002, 2), ("rank32", 32, 0.001, 1)):
        make_run(home, name, "demo", 0.4, age)
        folder = RunFolder(home / "runs" / name)
        folder.config_file.write_text(f"model: demo\ndataset: /data/a.jsonl\nrun_name: {name}\n"
                                      f"lora:\n  rank: {rank}\n  alpha: 32\ntrain:\n  learning_rate: {rate}\n")
        folder.metrics_file.write_text("".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in (1, 2, 3))
                                       + json.dumps({"step": 3, "eval_loss": 0.9}) + "\n")
    RunFolder(home / "runs" / "rank32").write_evaluation({"before": {"loss": 2.5}, "after": {"loss": 0.7}})
    page = _runs_page(home)
    qtbot.addWidget(page)
    page.show()
    assert not page.buttons["Compare…"].isEnabled()
    page.table.selectAll()
    assert page.buttons["Compare…"].isEnabled() and page.selected() is None  # one-run actions wait for one run
    assert not page.buttons["Delete…"].isEnabled()
    dialog = page.compare()
    qtbot.addWidget(dialog)
    qtbot.waitExposed(dialog)
    table = dialog.settings_table
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in (1, 2)] for r in range(table.rowCount())}
    assert rows == {"lora.rank": ["32", "8"], "train.learning_rate": ["0.001", "0.0002"]}  # newest first
    assert dialog.curves.drawn == ["rank32", "rank32 (eval)", "rank8", "rank8 (eval)"]
    numbers = dialog.numbers_table
    assert [numbers.item(r, 0).text() for r in range(numbers.rowCount())] == [
        "validation loss, base model", "validation loss, fine-tuned"]
    assert [numbers.item(0, c).text() for c in (1, 2)] == ["2.500", "—"]
