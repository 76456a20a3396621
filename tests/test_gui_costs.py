"""The Runs page's API comparison and Costs dialog, with a real llama.cpp server and the real engine."""

from __future__ import annotations

import sys

import pytest

from engine.light import api_chat
from engine.light.api_chat import Endpoint
from engine.light.api_privacy import Consent
from engine.light.run_folder import RunFolder, list_runs
from gui.app_state import AppState
from gui.pages.runs_page import RunsPage
from tests.llama_cpp import LlamaCpp
from tests.test_costs import evaluated, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow  # a llama.cpp server and engine processes: about 35 s


def _finished(folder: RunFolder) -> None:
    (folder.path / "config.yaml").write_text("model: demo\ndataset: /data/facts.jsonl\n")
    (folder.path / "events.jsonl").write_text('{"type": "state", "state": "finished"}\n')
    (folder.adapter_dir).mkdir()
    (folder.adapter_dir / "adapter_config.json").write_text("{}")


@pytest.fixture
def page(qtbot, home, evaluated):  # noqa: F811
    _finished(evaluated)
    page = RunsPage(AppState(str(home)), engine_command=[sys.executable, "-m", "engine"])
    qtbot.addWidget(page)
    page.asked = []
    page.consent = Consent(lambda endpoint, question: page.asked.append(question) or False)
    assert page.select("compared")
    return page


def test_the_api_models_answers_join_the_comparison_table(qtbot, page, demo_gguf):
    server = LlamaCpp(demo_gguf)
    endpoint = Endpoint(server.base_url, "smollm2")
    api_chat.store_key(endpoint, server.key)
    api_chat.save_endpoint(endpoint)
    assert page.api_button.isEnabled() and page.comparison.table.columnCount() == 4
    assert page.compare_with_api()
    qtbot.waitUntil(lambda: page.api_status.text().startswith(("Added", "Not added")), timeout=60_000)
    assert page.api_status.text().startswith("Added smollm2: ROUGE-L"), page.api_status.text()
    table = page.comparison.table
    assert table.columnCount() == 5 and table.horizontalHeaderItem(4).text() == "API model: smollm2"
    assert "Paris" in table.item(0, 4).text() and "API model smollm2: ROUGE-L" in page.comparison.summary.text()
    assert page.asked == []  # a local server: nothing to ask


def test_nothing_is_sent_off_this_computer_when_the_user_declines(page):
    api_chat.save_endpoint(Endpoint("https://api.llamadesk-test.invalid/v1", "gpt-4o"))
    assert not page.compare_with_api()
    assert len(page.asked) == 1 and page.asked[0].startswith(
        "The 2 compared validation prompts of compared will be sent to api.llamadesk-test.invalid")
    assert page.api_status.text() == "Nothing was sent to api.llamadesk-test.invalid."


def test_the_costs_dialog_prices_a_run(qtbot, home, trained):  # noqa: F811
    page = RunsPage(AppState(str(home)), engine_command=[sys.executable, "-m", "engine"])
    qtbot.addWidget(page)
    assert page.select("priced") and any(r.name == "priced" for r in list_runs())
    dialog = page.show_costs()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=120_000)
    text = dialog.report.toPlainText()
    assert "fine-tune on this dataset" in text and "answering 10,000 requests a month" in text, text
    dialog.model.setCurrentText("gpt-4.1")
    dialog.requests.setValue(5000)
    dialog.calculate()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=120_000)
    assert "API (gpt-4.1" in dialog.report.toPlainText() and "5,000 requests" in dialog.report.toPlainText()
