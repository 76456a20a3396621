"""The cost of each way: the dataset as OpenAI fine-tuning JSONL, its tokens priced with the dated table, the run's
measured time and energy, and the API model's answers added to the before/after comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.light import api_chat, gpu, prices
from engine.light.api_chat import Endpoint
from engine.light.run_folder import RunFolder
from tests import fake_nvml
from tests.engine_driver import EngineProcess
from tests.llama_cpp import LlamaCpp


def _engine(home, *args, check=True):
    done = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          env={**os.environ, "LLAMADESK_HOME": str(home)})
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def trained(home, tiny_model, small_dataset) -> RunFolder:
    engine = EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set",
                           f"dataset={small_dataset}", "--set", "quantization=none", "--set", "device=cpu",
                           "--set", "train.max_steps=3", "--set", "train.compare_base=false", "--set",
                           "data.validation_share=0.1", "--set", "run_name=priced")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    return RunFolder(home / "runs" / "priced")


@pytest.mark.slow
def test_the_costs_of_a_run_and_its_dataset_as_openai_jsonl(home, trained, small_dataset, tmp_path):
    out = tmp_path / "train.jsonl"
    result = json.loads(_engine(home, "costs", "priced", "--json", "--requests", "20000", "--jsonl",
                                str(out)).stdout)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    rows = small_dataset.read_text().splitlines()
    assert len(lines) == len(rows) == result["jsonl"]["examples"] == 40
    for line, row in zip(lines, rows):
        roles = [m["role"] for m in line["messages"]]
        assert set(roles) <= {"system", "user", "assistant"} and roles[-1] == "assistant"
        assert line["messages"][-1]["content"] == json.loads(row)["output"]

    t = result["tokens"]
    assert t["rows"] == 40 and t["total"] > t["trained"] > 0
    assert t["epochs"] == trained.metrics()[-1]["epoch"]  # as trained, not as configured
    mini = prices.table().models["gpt-4o-mini"]
    api = result["api"]
    assert api["fine_tune"] == pytest.approx(t["total"] * t["epochs"] * mini.training / 1e6)
    per_request = (t["prompt_per_request"] * mini.input + t["reply_per_request"] * mini.output) / 1e6
    assert api["answer_per_month"] == pytest.approx(20000 * per_request)
    timed = [m["elapsed_s"] for m in trained.metrics() if m.get("elapsed_s") is not None]
    assert result["local"]["training_s"] == timed[-1] and result["local"]["energy_wh"] is None  # a CPU run

    text = _engine(home, "costs", "priced", "--api-model", "llama-on-my-server").stdout
    assert "is not in the price table" in text and "energy not measured" in text


def test_energy_is_the_training_gpus_power_over_time(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(
        fake_nvml.card(power_mw=300_000, uuid="GPU-aaaa"), fake_nvml.card(power_mw=100_000, uuid="GPU-bbbb")))
    meter = gpu.EnergyMeter()
    assert meter.sample(0.0) == 0.0 and meter.sample(1800.0) == pytest.approx(200.0)  # 400 W for half an hour
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")  # only the GPU the run trains on counts
    one = gpu.EnergyMeter()
    one.sample(0.0)
    assert one.sample(3600.0) == pytest.approx(100.0)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(
        init_error=fake_nvml.NVMLError_LibraryNotFound("no driver")))
    assert gpu.EnergyMeter().sample(0.0) is None


@pytest.fixture
def evaluated(home) -> RunFolder:
    """A finished run's comparison, as evaluation.json holds one (the API part does not look at the models)."""
    folder = RunFolder.create("compared")
    answers = [{"prompt": "<|im_start|>user\nWhat is the capital of France?<|im_end|>", "reference": "Paris.",
                "question": "What is the capital of France? Answer in one word.", "before": "London",
                "after": "Paris", "rouge_l_before": 0.0, "rouge_l_after": 1.0},
               {"prompt": "…", "reference": "Berlin.", "question": "What is the capital of Germany? One word.",
                "before": "Paris", "after": "Berlin", "rouge_l_before": 0.0, "rouge_l_after": 1.0}]
    folder.write_evaluation({"validation_rows": 2, "before": {"rouge_l": 0.0}, "after": {"rouge_l": 1.0},
                             "answers": answers})
    return folder


def test_the_api_model_answers_the_compared_prompts_beside_both_models(home, evaluated, demo_gguf):
    server = LlamaCpp(demo_gguf)
    done = _engine(home, "compare-api", "compared", "--url", server.base_url, "--model", "smollm2",
                   "--max-tokens", "8", check=False)
    assert done.returncode == 1 and "refused the API key" in done.stderr  # no key yet
    api_chat.store_key(Endpoint(server.base_url, "smollm2"), server.key)
    done = _engine(home, "compare-api", "compared", "--url", server.base_url, "--model", "smollm2",
                   "--max-tokens", "8")
    print(done.stdout)
    result = evaluated.evaluation()
    answers = result["answers"]
    assert "Paris" in answers[0]["api"] and 0 < answers[0]["rouge_l_api"] <= 1
    assert result["api"]["answered"] == 2 and result["api"]["model"] == "smollm2"
    assert result["api"]["rouge_l"] == pytest.approx((answers[0]["rouge_l_api"] + answers[1]["rouge_l_api"]) / 2)
    assert result["api"]["completion_tokens"] > 0 and result["api"]["cost_usd"] is None
    assert answers[0]["after"] == "Paris"  # the local models' answers are kept
    assert "smollm2: ROUGE-L" in done.stdout
    # This comparison kept no conversations or caps (as an earlier LlamaDesk saved it): the question alone went, and
    # both the result and the terminal say so.
    assert "2 of 2 prompts went as the question alone" in result["api"]["note"]
    assert "not like for like: 2 of 2 prompts" in done.stderr and "capped at 8 tokens" in done.stderr


def test_prompts_are_not_sent_off_this_computer_without_a_yes(home, evaluated):
    done = _engine(home, "compare-api", "compared", "--url", "https://api.llamadesk-test.invalid/v1", "--model",
                   "gpt-4o", check=False)
    assert done.returncode == 1 and "Nothing was sent" in done.stderr
    assert "The 2 validation prompts of compared will be sent to api.llamadesk-test.invalid" in done.stderr
    assert "api" not in evaluated.evaluation()
