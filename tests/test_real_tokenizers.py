"""The engine's real paths on the real tokenizers of the LLaMA families (tests/real_tokenizers.py: llama.cpp's
vocabulary files, rebuilt and checked against the ids the original tokenizers gave): the rebuilt vocabularies, the
pre-tokenizer's recognition, the end of a turn, the SentencePiece spacing, data rendering with its trained-token
mask, and exports of tiny random-weight models of each family verified in llama.cpp, also when broken on purpose.

Everything here needs the 75 MB source distribution (downloaded once per machine), so the module is in the slow tier.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.heavy import end_of_turn
from engine.heavy.data.pipeline import DataSettings, prepare
from engine.heavy.export import gguf_file, gguf_metadata, pre_tokenizer
from engine.heavy.models import tokenizer as tokenizers
from tests import real_tokenizers as real
from tests.test_data_rendering import trained_texts, write_jsonl

pytestmark = pytest.mark.slow
FAMILIES = [f for f in real.FAMILIES if (real.TEMPLATES / real.FAMILIES[f].template).is_file()]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


def _tokenizer(family: str):
    return tokenizers.load(real.tokenizer_folder(family))


@pytest.mark.parametrize("vocab", ["llama-bpe", "llama-spm"])
def test_the_rebuilt_vocabularies_give_the_original_tokenizers_ids(vocab):
    folder = real.base_tokenizer(vocab)
    cases = real.recorded_cases(vocab)
    assert len(cases) >= 40 and real._mismatches(folder, vocab) == []


def test_every_recorded_pre_tokenizer_is_recognised_from_the_real_tokenizer(demo_model_dir):
    found = {pre_tokenizer.llama_cpp_name(tokenizers.load(real.tokenizer_folder("llama3")), "llama3"),
             pre_tokenizer.llama_cpp_name(tokenizers.load(demo_model_dir), "demo")}
    assert found == {name for name, _ in pre_tokenizer.KNOWN.values()}


def test_a_tokenizer_that_groups_digits_otherwise_is_refused_not_guessed(tmp_path):
    """Llama 3's vocabulary with digits grouped by two instead of three: llama.cpp knows no such rules."""
    from transformers import AutoTokenizer

    state = json.loads((real.tokenizer_folder("llama3") / "tokenizer.json").read_text(encoding="utf-8"))
    split = state["pre_tokenizer"]["pretokenizers"][0]
    split["pattern"]["Regex"] = split["pattern"]["Regex"].replace("\\p{N}{1,3}", "\\p{N}{1,2}")
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        if (real.tokenizer_folder("llama3") / name).is_file():
            (tmp_path / name).write_bytes((real.tokenizer_folder("llama3") / name).read_bytes())
    (tmp_path / "tokenizer.json").write_text(json.dumps(state), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.tokenize("12345") != tokenizers.load(real.tokenizer_folder("llama3")).tokenize("12345")
    with pytest.raises(pre_tokenizer.UnknownPreTokenizer) as refused:
        pre_tokenizer.llama_cpp_name(tokenizer, str(tmp_path))
    assert "llama.cpp would read prompts differently" in refused.value.message and refused.value.where == str(tmp_path)


EXPECTED_TURN_END = {"llama3": "<|eot_id|>", "llama3.1": "<|eot_id|>", "llama3.2": "<|eot_id|>", "llama2": "</s>",
                     "tinyllama": "</s>"}


def test_the_end_of_a_turn_is_the_token_the_template_closes_a_reply_with(family, tmp_path):
    tokenizer = _tokenizer(family)
    vocab = tokenizer.get_vocab()
    assert end_of_turn.turn_end_id(tokenizer) == vocab[EXPECTED_TURN_END[family]]
    model = real.model(tmp_path / "model", family)
    gguf_file.write(model, tmp_path / "model.gguf", "f16", name=family)
    metadata = gguf_metadata.read(tmp_path / "model.gguf")
    assert metadata["tokenizer.ggml.eot_token_id"] == vocab[EXPECTED_TURN_END[family]]
    assert metadata.get("tokenizer.ggml.eom_token_id") == vocab.get("<|eom_id|>")  # Llama 3.1 and later only
    # Generation stops at every end-of-turn token the model may write, <|end_of_text|> included.
    assert set(end_of_turn.end_of_turn_tokens(tokenizer)) >= {EXPECTED_TURN_END[family], tokenizer.eos_token}


def test_a_llama_2_tokenizer_spaces_text_as_sentencepiece_and_meta_do():
    from sentencepiece import SentencePieceProcessor

    tokenizer = _tokenizer("llama2")
    processor = SentencePieceProcessor(model_file=str(real.tokenizer_folder("llama2") / "tokenizer.model"))
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Who keeps the light?"}]
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, add_generation_prompt=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    # Meta's reference code encodes each turn with sentencepiece and puts <s>/</s> around it.
    expected = [1, *processor.encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! "), 2,
                1, *processor.encode("[INST] Who keeps the light? [/INST]")]
    assert ids == expected
    for text, recorded in real.recorded_cases("llama-spm"):
        if text.strip() and not text.startswith(" "):  # transformers' own merges part on runs of leading spaces
            assert tokenizer(text, add_special_tokens=False).input_ids == recorded, text


def test_data_rendering_trains_exactly_the_reply_and_its_end_of_turn(family, tmp_path):
    tokenizer = _tokenizer(family)
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"messages": [{"role": "system", "content": "You keep lighthouses."},
                      {"role": "user", "content": "Where is Vellmoor?"},
                      {"role": "assistant", "content": "An island in the Skarrow Sea."},
                      {"role": "user", "content": "And its light?"},
                      {"role": "assistant", "content": "Ünïcödé — 灯台 😀"}]}])
    train, _ = prepare(path, tokenizer, DataSettings(validation_share=0), use_cache=False).splits()
    closing = tokenizer.convert_ids_to_tokens(end_of_turn.turn_end_id(tokenizer))
    texts = [t.strip() for t in trained_texts(tokenizer, train[0])]
    assert texts == [f"An island in the Skarrow Sea.{closing}".strip(), f"Ünïcödé — 灯台 😀{closing}".strip()] or \
        texts == [f"An island in the Skarrow Sea. {closing}", f"Ünïcödé — 灯台 😀 {closing}"], texts


# ---- exports verified in llama.cpp -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_dataset):
    """A fine-tuned tiny model of each family, made on first use."""
    made = {}

    def run_of(family: str):
        if family not in made:
            made[family] = _fine_tune(tmp_path_factory.mktemp(family.replace(".", "-")), family, small_dataset)
        return made[family]
    return run_of


def _fine_tune(folder: Path, family: str, dataset: Path, **model_config):
    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.light import config as run_config
    from engine.light.run_folder import RunFolder

    model = real.model(folder / "model", family, **model_config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLAMADESK_HOME", str(folder / "home"))
        config = run_config.from_mapping({
            "model": str(model), "dataset": str(dataset), "run_name": "tuned", "quantization": "none",
            "data": {"validation_share": 0.1}, "train": {"max_steps": 8, "learning_rate": 3e-2}})
        assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    return RunFolder(folder / "home" / "runs" / "tuned")


def _export(run, out: Path, fmt: str, quant: str = "f16"):
    from engine.heavy.control import Control
    from engine.heavy.export import job
    from engine.light import protocol
    from engine.light.export_options import ExportOptions
    from tests.engine_driver import Collected

    collected = Collected()
    code = job.run(run, ExportOptions(fmt, quant, out=out), emitter=collected, control=Control(), device="cpu")
    return code, collected.of(protocol.ExportFinished)[0].verification


def test_each_familys_gguf_passes_in_llama_cpp(family, runs, tmp_path):
    code, report = _export(runs(family), tmp_path / "gguf", "gguf", "q8_0" if family == "llama3" else "f16")
    checks = report["gguf"]["tokenizer"]
    assert code == 0 and report["passed"], json.dumps(report, indent=1)
    assert checks["prompt_ids_identical"] and checks["template_renders_identical"] and checks["stops_at_end_of_turn"]
    # one beginning-of-sequence token, not two or none; none for TinyLlama, whose template (and training) has none
    assert checks["beginning_tokens"] == (0 if family == "tinyllama" else 1)
    answers = report["gguf"]["answers"]
    assert answers["runtime"] == "llama.cpp" and answers["clear_positions"] >= 32 and answers["verdict"] == "passed"


WIDE_INIT = 0.12  # rows 256 wide add up four times the terms of the tiny models' 64


def test_a_llama_3_ollama_export_with_k_quants_passes_in_llama_cpp(tmp_path_factory, small_dataset, tmp_path):
    """Rows 256 wide, so Q4_K_M writes real K-quant blocks on Llama 3's real vocabulary; its Modelfile is Llama 3's."""
    run = _fine_tune(tmp_path_factory.mktemp("wide-llama3"), "llama3", small_dataset, hidden_size=256,
                     intermediate_size=512, initializer_range=WIDE_INIT)
    code, report = _export(run, tmp_path / "ollama", "ollama", "q4_k_m")
    assert code == 0 and report["passed"], json.dumps(report["gguf"], indent=1)
    assert report["gguf"]["tensor_types"].get("Q4_K", 0) > 0 and report["ollama"]["family"] == "llama3"
    assert "<|eot_id|>" in report["ollama"]["stops"]


def test_a_sentencepiece_model_keeps_its_tokenizer_model_through_the_real_merge(runs, tmp_path):
    code, report = _export(runs("llama2"), tmp_path / "merged", "merged")
    assert code == 0 and (tmp_path / "merged" / "tokenizer.model").is_file()
    assert gguf_file.write(tmp_path / "merged", tmp_path / "m.gguf", "f16", name="m").types["F16"] > 0
    assert gguf_metadata.read(tmp_path / "m.gguf")["tokenizer.ggml.model"] == "llama"  # SentencePiece, not BPE


BREAKAGES = {
    "pre-tokenizer": "splits the check text into tokens differently",
    "end-of-turn": "the file marks different special tokens",
    "template": "the chat template stored in the file is not the model's",
}


@pytest.mark.parametrize("broken", list(BREAKAGES))
def test_a_deliberately_broken_export_fails_and_says_what_differs(broken, runs, tmp_path, monkeypatch):
    import gguf

    if broken == "pre-tokenizer":  # Llama 3's vocabulary written under SmolLM2's splitting rules
        monkeypatch.setattr(pre_tokenizer, "llama_cpp_name", lambda tokenizer, where: "smollm")
    elif broken == "end-of-turn":  # the old mistake: <|end_of_text|> marked as the end of a turn
        monkeypatch.setattr(end_of_turn, "turn_end_id", lambda tokenizer: tokenizer.convert_tokens_to_ids(
            "<|end_of_text|>") if tokenizer.eos_token == "<|eot_id|>" else tokenizer.eos_token_id)
    else:
        written = gguf.GGUFWriter.add_chat_template
        monkeypatch.setattr(gguf.GGUFWriter, "add_chat_template",
                            lambda self, value: written(self, value.replace("| trim", "")))
    run = runs("llama3")
    if broken == "end-of-turn":
        from engine.heavy.export import in_llama_cpp

        real_checks = in_llama_cpp.tokenizer_checks
        monkeypatch.setattr(in_llama_cpp, "tokenizer_checks", _with_true_turn_end(real_checks))
    code, report = _export(run, tmp_path / "broken", "gguf")
    assert code == 1 and not report["passed"]
    assert any(BREAKAGES[broken] in text for text in report["gguf"]["tokenizer"]["differences"]), report["gguf"]
    assert not (tmp_path / "broken").exists() and (tmp_path / "broken.failed").is_dir()


def _with_true_turn_end(checks):
    """The verification's expectation stays the template's real end of a turn (only the writer is broken)."""
    def measured(llama, gguf_path, tokenizer):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(end_of_turn, "turn_end_id", _template_turn_end)
            return checks(llama, gguf_path, tokenizer)
    return measured


def _template_turn_end(tokenizer):
    return tokenizer.get_vocab()[end_of_turn.template_terminator(tokenizer)]
