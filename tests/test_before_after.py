"""The base model against the fine-tune on the validation split: at the end of training, and again from the command
line for a finished run (also one whose folder holds no comparison yet); the losses it reports against a
cross-entropy summed by hand; each answer's conversation and cap, and the API model asked the same."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.light import api_compare, protocol
from engine.light.api_chat import Endpoint
from engine.light.run_folder import RunFolder
from tests.api_responders import Responder, streamed
from tests.engine_driver import EngineProcess

IGNORE = -100  # the label of a token no loss counts (PyTorch's cross-entropy default)


def _train(home, tiny_model, dataset, name, *extra):
    engine = EngineProcess(home, "train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={dataset}",
                           "--set", "quantization=none", "--set", "data.validation_share=0.2", "--set",
                           "train.max_steps=6", "--set", "train.learning_rate=0.01", "--set",
                           "train.compare_prompts=3", "--set", f"run_name={name}", *extra)
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    return engine


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model, small_dataset):
    home = tmp_path_factory.mktemp("llamadesk-home")
    engine = _train(home, tiny_model, small_dataset, "cmp")
    return home, engine


def test_training_ends_by_comparing_the_base_model_and_the_fine_tune(compared, small_dataset):
    home, engine = compared
    states = [m.state for m in engine.messages if isinstance(m, protocol.State)]
    assert states[-3:] == ["saving", "comparing", "finished"]
    result = RunFolder(home / "runs" / "cmp").evaluation()
    assert result["after"]["loss"] < result["before"]["loss"]  # six steps at 1e-2 on these rows learned something
    finished = next(m for m in engine.messages if isinstance(m, protocol.Finished))
    assert finished.metrics["before_loss"] == result["before"]["loss"]
    # The prompts and references come from the validation rows themselves: each reference is a reply of the dataset.
    rows = [json.loads(line) for line in small_dataset.read_text().splitlines()]
    outputs = {row["output"].strip() for row in rows}
    assert len(result["answers"]) == 3
    for answer in result["answers"]:
        assert answer["reference"] in outputs
        assert answer["prompt"].rstrip().endswith("assistant")  # the chat template's header before the reply
        assert any(answer["question"].startswith(row["instruction"].strip()) for row in rows), answer["question"]
        assert 0.0 <= answer["rouge_l_before"] <= 1.0 and 0.0 <= answer["rouge_l_after"] <= 1.0


def _cross_entropy(model, rows: list[dict]) -> tuple[float, int]:
    """The mean of -log p(label | the tokens before it) over every labelled token of ``rows``, summed by hand from the
    model's logits, and how many tokens that is."""
    import torch

    total, count = 0.0, 0
    for row in rows:
        ids = torch.tensor([row["input_ids"]], device=model.device)
        positions = torch.tensor([row["position_ids"]], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=ids, position_ids=positions).logits[0].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        for t, label in enumerate(row["labels"]):
            if t > 0 and label != IGNORE:  # the token at t is predicted from the logits at t - 1
                total -= float(log_probs[t - 1, label])
                count += 1
    return total / count, count


def test_the_reported_losses_are_the_cross_entropy_of_the_validation_replies(compared):
    from engine.heavy import device as devices
    from engine.heavy.data import pipeline
    from engine.heavy.generation import Generator

    home, _ = compared
    folder = RunFolder(home / "runs" / "cmp")
    config = folder.load_config()
    generator = Generator.load(Path(config.model), folder.adapter_dir, device=devices.resolve_device(config.device),
                               config=config)
    validation = pipeline.prepare(config.dataset, generator.tokenizer, config.data, preview_rows=0).splits()[1]
    rows = [dict(row) for row in validation]
    with generator.model.disable_adapter():
        before, before_tokens = _cross_entropy(generator.model, rows)
    after, after_tokens = _cross_entropy(generator.model, rows)
    result = folder.evaluation()
    assert result["validation_rows"] == len(rows) and before_tokens == after_tokens > 0
    for side, loss, tokens in (("before", before, before_tokens), ("after", after, after_tokens)):
        assert result[side]["loss"] == pytest.approx(loss, rel=1e-4)
        assert result[side]["perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
        assert result[side]["tokens"] == tokens


def _conversations(path: Path, count: int) -> list[list[dict]]:
    """Chats with a system prompt and an untrained first exchange (OpenAI's weight 0): the trained reply comes after
    earlier turns. Written as OpenAI chat JSONL; returned as written."""
    chats = [[{"role": "system", "content": "You are the harbor guide of Port Wren. Reply in one short sentence."},
              {"role": "user", "content": f"Hello, I am visitor number {i}."},
              {"role": "assistant", "content": f"Welcome to Port Wren, visitor number {i}.", "weight": 0},
              {"role": "user", "content": f"Where is boat {i} moored?"},
              {"role": "assistant", "content": f"Boat {i} is moored at pier {i % 3 + 1}."}] for i in range(count)]
    path.write_text("".join(json.dumps({"messages": chat}) + "\n" for chat in chats), encoding="utf-8")
    return chats


@pytest.mark.parametrize("packing", [False, True])
def test_each_answer_keeps_its_conversation_and_cap_and_the_api_model_is_asked_the_same(home, tmp_path, tiny_model,
                                                                                         packing):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.heavy import before_after
    from engine.heavy.data import pipeline
    from engine.light.config import DataSettings

    chats = _conversations(tmp_path / "chats.jsonl", 12)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    settings = DataSettings(validation_share=0.5, packing=packing)
    validation = pipeline.prepare(tmp_path / "chats.jsonl", tokenizer, settings, preview_rows=0).splits()[1]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    caps, generate = [], model.generate

    def recording_generate(**settings):  # the cap each local answer was generated with
        caps.append(settings["max_new_tokens"])
        return generate(**settings)

    model.generate = recording_generate
    result = before_after.evaluate(model, tokenizer, validation, prompts=3)

    answers = result["answers"]
    assert len(answers) == (1 if packing else 3)  # packed, the six validation chats share one sequence
    by_reply = {chat[-1]["content"]: chat for chat in chats}
    for answer in answers:
        asked = [{"role": m["role"], "content": m["content"]} for m in by_reply[answer["reference"]][:-1]]
        assert answer["messages"] == asked  # the system prompt, the earlier exchange, the question
        assert tokenizer.apply_chat_template(asked, add_generation_prompt=True, tokenize=False) == answer["prompt"]
    assert caps == [answer["max_new_tokens"] for answer in answers for _side in ("before", "after")]

    folder = RunFolder.create("chats")
    folder.write_evaluation(result)
    handler = streamed()
    responder = Responder(handler)
    try:
        api_compare.compare(folder, Endpoint(responder.base_url, "m"))
    finally:
        responder.close()
    assert [request["messages"] for request in handler.requests] == [answer["messages"] for answer in answers]
    assert [request["max_tokens"] for request in handler.requests] == caps[::2]
    assert folder.evaluation()["api"]["note"] is None


@pytest.mark.slow
def test_eval_compares_a_finished_run_again_from_the_command_line(compared):
    home, _ = compared
    folder = RunFolder(home / "runs" / "cmp")
    first = folder.evaluation()
    folder.evaluation_file.unlink()  # as for a run trained before the comparison existed
    engine = EngineProcess(home, "eval", "--json", "cmp", "--prompts", "2")
    assert engine.finish() == 0, engine.stderr.decode()[-2000:]
    again = folder.evaluation()
    assert len(again["answers"]) == 2
    for side in ("before", "after"):  # the same weights and split: the same losses and greedy answers
        assert again[side]["loss"] == pytest.approx(first[side]["loss"], rel=1e-4)
    assert [a["after"] for a in again["answers"]] == [a["after"] for a in first["answers"][:2]]


@pytest.mark.slow
def test_a_run_without_a_validation_split_is_not_compared_and_says_why(home, tiny_model, small_dataset):
    engine = _train(home, tiny_model, small_dataset, "noval", "--set", "data.validation_share=0")
    assert "comparing" not in [m.state for m in engine.messages if isinstance(m, protocol.State)]
    assert any("no validation split" in m.message for m in engine.messages if isinstance(m, protocol.Log))
    again = EngineProcess(home, "eval", "--json", "noval")
    assert again.finish() == 1
    error = next(m for m in again.messages if isinstance(m, protocol.Error))
    assert error.kind == "evaluation" and "no validation split" in error.message and "validation_share" in error.hint
