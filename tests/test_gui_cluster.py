"""The Train page's "Run on a cluster…": the dialog writes a job folder through the real engine and says how to start
it; a config without a dataset is refused on the page."""

from __future__ import annotations

import sys

import pytest

from engine.light import config as run_config
from gui.cluster_dialog import ClusterDialog


@pytest.mark.slow
def test_the_dialog_writes_a_job_folder_and_says_how_to_start_it(qtbot, home, tiny_model, small_dataset, tmp_path):
    config = run_config.RunConfig(model=str(tiny_model), dataset=str(small_dataset), device="cpu", run_name="far")
    dialog = ClusterDialog(config, home=str(home), engine_command_=[sys.executable, "-m", "engine"])
    qtbot.addWidget(dialog)
    dialog.nodes.setValue(3)
    dialog.gpus.setValue(4)
    assert "12 GPUs in all" in dialog.batch.text() and "4 × 2 × 12 = 96 sequences" in dialog.batch.text()
    dialog.folder.setText(str(tmp_path / "job"))
    dialog.write()
    assert not dialog.write_button.isEnabled()  # one job at a time
    qtbot.waitUntil(dialog.write_button.isEnabled, timeout=120_000)  # the engine has ended
    text = dialog.report.toPlainText()
    assert dialog.result is not None, text
    assert "sbatch slurm.sbatch" in text and "sky launch" in text and dialog.open_button.isEnabled()
    assert "#SBATCH --nodes=3" in (tmp_path / "job" / "slurm.sbatch").read_text()
    assert (tmp_path / "job" / "far" / "config.yaml").is_file()

    dialog.write()  # the folder is not empty now: refused, in words
    qtbot.waitUntil(lambda: dialog.write_button.isEnabled(), timeout=120_000)
    assert "Not written: " in dialog.report.toPlainText() and "not empty" in dialog.report.toPlainText()


def test_the_train_page_asks_for_a_dataset_first(qtbot, home):
    from gui.app_state import AppState
    from gui.pages.train_page import TrainPage

    page = TrainPage(AppState(str(home)), engine_command=[sys.executable, "-c", "pass"])
    qtbot.addWidget(page)
    page.cluster_button.click()
    assert "Before writing a cluster job" in page.problems.text() and "dataset" in page.problems.text()
