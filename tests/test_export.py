"""Exporting a finished run: each format written, read back the way its users read it, and verified against the
fine-tune before it is called done; bad cases end with a clear message and nothing that looks complete.

A tiny random-weight LLaMA whose rows are 256 wide, so that Q4_K_M writes real K-quant blocks, is fine-tuned in 4-bit
once per module. The GGUF files are loaded by a real llama.cpp (xllamacpp, tests/llama_cpp.py), their Modelfile
by Ollama's reader and Go templates (tests/ollama_modelfile.py).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.export import job, verify
from engine.light import config as run_config
from engine.light import protocol
from engine.light.errors import UserError
from engine.light.export_options import ExportOptions
from engine.light.run_folder import RunFolder
from tests.engine_driver import Collected, EngineProcess, of_type, state


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory, demo_model_dir) -> Path:
    """Random weights with 256-wide rows (K-quant blocks fit) and logits peaked enough that quantization error is
    measured against clear choices."""
    from engine.heavy.models.random_weights import write_model

    return write_model(tmp_path_factory.mktemp("wide") / "wide-llama", demo_model_dir, hidden_size=256,
                       intermediate_size=512, num_attention_heads=4, num_key_value_heads=2, initializer_range=0.08)


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory, wide_model, small_dataset) -> RunFolder:
    home = tmp_path_factory.mktemp("export-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLAMADESK_HOME", str(home))
        config = run_config.from_mapping({
            "model": str(wide_model), "dataset": str(small_dataset), "run_name": "tuned", "quantization": "nf4",
            "data": {"validation_share": 0.1}, "train": {"max_steps": 8, "learning_rate": 3e-2}})
        assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    return RunFolder(home / "runs" / "tuned")


def export(run: RunFolder, out: Path, fmt: str, quant: str = "f16", **options) -> tuple[int, Collected]:
    collected = Collected()
    code = job.run(run, ExportOptions(fmt, quant, out=out, **options), emitter=collected, control=Control(),
                   device="cpu")
    return code, collected


def test_merged_export_is_a_model_folder_that_answers_as_the_fine_tune(qlora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    code, events = export(qlora_run, tmp_path / "merged", "merged")
    assert code == 0, events.messages[-3:]
    folder = tmp_path / "merged"
    assert not (tmp_path / "merged.partial").exists()
    report = json.loads((folder / "verification.json").read_text(encoding="utf-8"))
    assert report["passed"] and events.of(protocol.ExportFinished)[0].verification == report
    assert report["merged"]["passed"] and report["merged"]["clear_top1_agreement"] >= 0.99
    # the run holds out 4 of its 40 rows: the verification tops its 8 prompts up with training examples
    assert report["merged"]["prompt_source"] == "the first 4 validation and 4 training examples of the run's dataset"
    assert report["merged"]["prompts"] == 8 and report["merged"]["clear_positions"] >= 32
    assert report["merged"]["merged_into"] == "trained"
    stages = [m.stage for m in events.of(protocol.ExportProgress)]
    assert stages.index("merging") < stages.index("saving") < stages.index("verifying")

    model = AutoModelForCausalLM.from_pretrained(folder)
    assert str(model.dtype) == "torch.bfloat16" and not hasattr(model.config, "quantization_config")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    trained_with = AutoTokenizer.from_pretrained(qlora_run.adapter_dir)
    assert tokenizer.chat_template == trained_with.chat_template
    ends = GenerationConfig.from_pretrained(folder).eos_token_id
    assert set(ends) == {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "base_model: " in card and "small.jsonl" in card and "4-bit QLoRA" in card and "train_loss" in card


def test_merging_into_the_original_weights_is_checked_and_its_distance_measured(qlora_run, tmp_path):
    """Merged into the original weights, the model answers as the adapter on them does; those weights are not what
    the adapter trained against, and the report says how far that moves it from the fine-tune."""
    code, events = export(qlora_run, tmp_path / "original", "merged", merge_into="original")
    assert code == 0
    report = events.of(protocol.ExportFinished)[0].verification["merged"]
    assert report["merged_into"] == "original"
    assert report["passed"] and report["clear_top1_agreement"] >= 0.99
    assert report["against_the_fine_tune_as_trained"]["kl_divergence"] > 10 * max(report["kl_divergence"], 1e-7)


def test_adapter_export_copies_the_adapter(qlora_run, tmp_path):
    code, _ = export(qlora_run, tmp_path / "adapter", "adapter")
    assert code == 0
    assert {"adapter_model.safetensors", "adapter_config.json", "verification.json"} <= {
        p.name for p in (tmp_path / "adapter").iterdir()}


# ---- bad cases -------------------------------------------------------------------------------------------------

def _error(home: Path, *args: str) -> protocol.Error:
    engine = EngineProcess(home, "export", *args, "--device", "cpu", "--json")
    error = engine.wait_for(of_type(protocol.Error))
    assert engine.finish() == 1
    return error


def test_a_run_without_an_adapter_is_refused(home, qlora_run, tmp_path):
    unfinished = home / "runs" / "unfinished"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text((qlora_run.path / "config.yaml").read_text(encoding="utf-8"))
    error = _error(home, "unfinished")
    assert error.kind == "no_adapter" and "has no adapter" in error.message and "resume" in error.hint


def _copy_run(run: RunFolder, home: Path, **changes) -> str:
    import shutil

    import yaml

    target = home / "runs" / "copy"
    shutil.copytree(run.path, target, ignore=shutil.ignore_patterns("lock*", "checkpoints"))
    config = yaml.safe_load((target / "config.yaml").read_text(encoding="utf-8"))
    config.update(changes)
    (target / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return "copy"


def _refusal(home: Path, run_name: str) -> UserError:
    with pytest.raises(UserError) as raised:
        export(RunFolder(home / "runs" / run_name), home / "exports" / "out", "gguf")
    assert not (home / "exports").exists(), "nothing was written"
    return raised.value


def test_an_unsupported_architecture_is_refused(home, qlora_run, tmp_path):
    from transformers import AutoModelForCausalLM, Qwen2Config

    other = tmp_path / "qwen"
    AutoModelForCausalLM.from_config(Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                                 num_attention_heads=4, num_key_value_heads=2,
                                                 vocab_size=128)).save_pretrained(other)
    error = _refusal(home, _copy_run(qlora_run, home, model=str(other)))
    assert error.kind == "unsupported" and "Qwen2ForCausalLM" in error.message and "adapter" in error.hint


def test_a_base_model_that_is_not_downloaded_is_named(home, qlora_run):
    error = _refusal(home, _copy_run(qlora_run, home, model="meta-llama/Llama-3.2-1B-Instruct"))
    assert "base model is not available" in error.message
    assert "meta-llama/Llama-3.2-1B-Instruct" in f"{error.where} {error.message}" and error.hint


def test_too_little_free_disk_is_refused_before_writing(qlora_run, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))  # 1 MiB free
    with pytest.raises(UserError) as raised:
        export(qlora_run, tmp_path / "out", "gguf", "q8_0")
    assert raised.value.kind == "disk_full" and "the export's files need about" in raised.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_disk_that_fills_up_while_writing_leaves_nothing(home, qlora_run, tmp_path):
    """A real limit on file size in the engine's process: the merged weights cannot be written in full."""
    out = tmp_path / "merged"

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 2**20, 4 * 2**20))

    done = subprocess.run([sys.executable, "-m", "engine", "export", str(qlora_run.path), "--format", "merged",
                           "--out", str(out), "--device", "cpu", "--json"], preexec_fn=limit_files,
                          capture_output=True, env=dict(os.environ, LLAMADESK_HOME=str(home)), timeout=300)
    errors = [m for m in protocol.Reader().feed(done.stdout) if isinstance(m, protocol.Error)]
    assert done.returncode == 1 and errors, done.stderr.decode()[-2000:]
    assert errors[0].kind == "disk_full" and "filled up" in errors[0].message
    assert not out.exists() and not out.with_name("merged.partial").exists()


# ---- GGUF and Ollama, through llama.cpp ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gguf_exports(qlora_run, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    found = {}
    for fmt, quant in (("gguf", "f16"), ("gguf", "q8_0"), ("ollama", "q4_k_m")):
        code, events = export(qlora_run, root / quant, fmt, quant)
        assert code == 0, events.of(protocol.ExportFinished) or events.messages[-3:]
        found[quant] = root / quant
    return found


def _merged_reference(run: RunFolder, tmp_path: Path):
    """The fine-tune's merged model and its prompts, the yardstick for llama.cpp's answers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    code, _ = export(run, tmp_path / "merged", "merged")
    assert code == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    prompts, _ = verify.prompts_from_run(run.load_config(), tokenizer)
    return model, tokenizer, prompts


@pytest.mark.slow
def test_gguf_exports_answer_in_llama_cpp_as_the_merged_model(qlora_run, gguf_exports, tmp_path):
    import torch

    from tests.llama_cpp import LlamaCpp

    model, tokenizer, prompts = _merged_reference(qlora_run, tmp_path)
    conversation = verify.CONVERSATION
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    agreement = {}
    for quant, folder in gguf_exports.items():
        report = json.loads((folder / "verification.json").read_text(encoding="utf-8"))
        assert report["passed"] and report["gguf"]["tokenizer"]["prompt_ids_identical"]
        llama = LlamaCpp(folder / report["gguf"]["file"])
        assert llama.apply_template(conversation) == rendered, "llama.cpp renders the stored template as HF does"
        assert llama.tokenize(rendered, add_special=False) == tokenizer(rendered, add_special_tokens=False).input_ids
        agree = total = 0
        for prompt in prompts:
            ids = llama.greedy(prompt, verify.NEW_TOKENS)["ids"]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt + ids])).logits[0]
            chosen = logits[len(prompt) - 1: len(prompt) - 1 + len(ids)].argmax(-1).tolist()
            agree += sum(a == b for a, b in zip(ids, chosen))
            total += len(ids)
        agreement[quant] = agree / total
        del llama
    # llama.cpp's own next-token choices against the merged model's, at every position.
    assert agreement["f16"] >= 0.98 and agreement["q8_0"] >= 0.9 and agreement["q4_k_m"] >= 0.75, agreement


@pytest.mark.slow
def test_q4_k_m_writes_llama_cpps_mix_of_k_quants(gguf_exports):
    report = json.loads((gguf_exports["q4_k_m"] / "verification.json").read_text(encoding="utf-8"))
    types = report["gguf"]["tensor_types"]
    # Two layers: the second is the last eighth, so its value and down projections get Q6_K, as does the tied
    # embedding that serves as the output head; the other twelve matrices Q4_K; the norms stay F32.
    assert types == {"Q4_K": 12, "Q6_K": 3, "F32": 5}, types


@pytest.mark.slow
def test_the_ollama_export_is_read_and_rendered_as_ollama_does(qlora_run, gguf_exports, modelfile_reader):
    from transformers import AutoTokenizer

    from tests import ollama_modelfile

    folder = gguf_exports["q4_k_m"]
    report = json.loads((folder / "verification.json").read_text(encoding="utf-8"))
    assert report["ollama"]["family"] == "chatml" and report["ollama"]["end_of_turn_not_stopped"] == []
    assert report["ollama"]["create"] == f"ollama create tuned -f {folder / 'Modelfile'}"
    tokenizer = AutoTokenizer.from_pretrained(qlora_run.adapter_dir)
    read = ollama_modelfile.read(modelfile_reader, (folder / "Modelfile").read_text(encoding="utf-8"),
                                 [verify.CONVERSATION])
    assert (folder / read["from"]).is_file()
    assert read["prompts"] == [tokenizer.apply_chat_template(verify.CONVERSATION, tokenize=False,
                                                             add_generation_prompt=True)]
    assert {"<|im_end|>", "<|endoftext|>"} <= set(read["parameters"]["stop"])


@pytest.mark.slow
def test_a_sentencepiece_llama_2_with_its_own_head_converts_exactly(tmp_path):
    """Llama 2 / TinyLlama's SentencePiece vocabulary, an untied output head and Llama 3.1's frequency scaling:
    llama.cpp tokenizes as sentencepiece does and continues exactly as the model."""
    import torch

    from engine.heavy.export import gguf_file
    from tests.llama_cpp import LlamaCpp
    from tests.sentencepiece_model import write_llama2_model

    folder = write_llama2_model(tmp_path / "spm-llama")
    written = gguf_file.write(folder, tmp_path / "spm.gguf", "f16", name="spm")
    assert written.types["F16"] == 16 and written.types["F32"] == 6  # 14 + embedding + head; norms + rope_freqs
    from sentencepiece import SentencePieceProcessor
    from transformers import AutoModelForCausalLM

    processor = SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    llama = LlamaCpp(tmp_path / "spm.gguf")
    for text in ("Hello world 12345", "  two leading spaces", "tabs\tand\nnewlines", "café ünïcödé"):
        assert llama.tokenize(text) == [1, *processor.encode(text)], text
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    prompt = [1, *processor.encode("The lighthouse keeper")]
    ids = llama.greedy(prompt, verify.NEW_TOKENS)["ids"]
    with torch.no_grad():
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=verify.NEW_TOKENS, do_sample=False,
                                  min_new_tokens=verify.NEW_TOKENS, pad_token_id=0)[0, len(prompt):].tolist()
    assert ids == expected


@pytest.mark.slow
def test_a_conversion_that_breaks_the_model_fails_verification(qlora_run, tmp_path, monkeypatch):
    """Without the query/key reordering llama.cpp's rotary layout needs, the file is well-formed and wrong: the
    verification catches it, and the export is neither reported as done nor put under the export folder's name."""
    from engine.heavy.export import gguf_file

    monkeypatch.setattr(gguf_file, "_interleave_halves", lambda weight, heads: weight)
    code, events = export(qlora_run, tmp_path / "broken", "gguf", "f16")
    report = events.of(protocol.ExportFinished)[0].verification
    assert code == 1 and not report["passed"] and report["merged"]["passed"]
    answers = report["gguf"]["answers"]
    assert not answers["passed"] and answers["clear_top1_agreement"] < 0.9, answers
    failed = tmp_path / "broken.failed"
    assert events.messages[-1] == protocol.State(
        "failed", f"Verification failed; the files are kept in {failed}; nothing was written to {tmp_path / 'broken'}.")
    assert not (tmp_path / "broken").exists() and (failed / report["gguf"]["file"]).is_file()


# ---- interruptions -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_export_leaves_nothing_that_looks_complete_and_a_rerun_finishes(home, qlora_run, tmp_path):
    out = tmp_path / "killed"
    engine = EngineProcess(home, "export", str(qlora_run.path), "--format", "gguf", "--quant", "q8_0",
                           "--out", str(out), "--device", "cpu", "--json")
    engine.wait_for(lambda m: isinstance(m, protocol.ExportProgress) and m.stage == "converting")
    engine.proc.kill()
    engine.proc.wait()
    assert not out.exists(), "only the .partial folder is left"
    assert out.with_name("killed.partial").is_dir()

    rerun = EngineProcess(home, "export", str(qlora_run.path), "--format", "gguf", "--quant", "q8_0",
                          "--out", str(out), "--device", "cpu", "--json")
    finished = rerun.wait_for(of_type(protocol.ExportFinished))
    assert rerun.finish() == 0 and finished.passed
    assert sorted(p.name for p in out.iterdir()) == ["tuned-q8_0.gguf", "verification.json"]
    assert not out.with_name("killed.partial").exists()


@pytest.mark.slow
def test_a_cancelled_export_says_so_and_writes_nothing(home, qlora_run, tmp_path):
    out = tmp_path / "cancelled"
    engine = EngineProcess(home, "export", str(qlora_run.path), "--format", "merged", "--out", str(out),
                           "--device", "cpu", "--json")
    engine.wait_for(lambda m: isinstance(m, protocol.ExportProgress) and m.stage == "reference")
    engine.send(protocol.Stop())
    engine.wait_for(state("cancelled"))
    assert engine.finish() == 1
    assert not out.exists() and not out.with_name("cancelled.partial").exists()


# ---- the demo, end to end ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_demo_fine_tune_as_gguf_answers_the_lighthouse_question_in_llama_cpp(demo_facts_run, monkeypatch, tmp_path):
    """The demo model taught the sample's facts, exported merged and written to F16 and Q8_0: llama.cpp answers with
    the fact, and F16 continues the run's prompts exactly as the merged model. (The GGUF formats' own verification
    runs on the tiny model above and, on the demo, in bench/export_bench.py.)"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.heavy.export import gguf_file
    from engine.light import demo_settings
    from tests.llama_cpp import LlamaCpp

    monkeypatch.setenv("LLAMADESK_HOME", str(demo_facts_run.path.parent.parent))
    code, events = export(demo_facts_run, tmp_path / "merged", "merged")
    report = events.of(protocol.ExportFinished)[0].verification
    assert code == 0 and report["merged"]["clear_top1_agreement"] == 1.0, report
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    question = next(q for q in demo_settings.questions() if "lighthouse" in q.question)
    asked = tokenizer.apply_chat_template([{"role": "user", "content": question.question}], tokenize=False,
                                          add_generation_prompt=True)
    prompts, _ = verify.prompts_from_run(demo_facts_run.load_config(), tokenizer)
    for quant in ("f16", "q8_0"):
        gguf = gguf_file.write(tmp_path / "merged", tmp_path / f"facts-{quant}.gguf", quant, name="facts").path
        llama = LlamaCpp(gguf)
        answer = llama.greedy(tokenizer(asked, add_special_tokens=False).input_ids, 40, stop_at_end=True)["text"]
        assert question.expect in answer, (quant, answer)
        if quant == "f16":
            for prompt in prompts:
                with torch.no_grad():
                    expected = merged.generate(torch.tensor([prompt]), max_new_tokens=verify.NEW_TOKENS,
                                               min_new_tokens=verify.NEW_TOKENS, do_sample=False,
                                               pad_token_id=0)[0, len(prompt):].tolist()
                assert llama.greedy(prompt, verify.NEW_TOKENS)["ids"] == expected
        del llama
