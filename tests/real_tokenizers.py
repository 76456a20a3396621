"""The real tokenizers of the LLaMA families, for tests (test helper).

llama.cpp ships vocabulary-only GGUF files of the tokenizers it supports, with texts and the token ids the original
Hugging Face tokenizers give for them (``.inp``/``.out``); they are inside the llama-cpp-python source distribution on
the package index. It is downloaded once per machine into the test cache (sha256 pinned, like the demo wheel), and
each vocabulary is rebuilt as a Hugging Face tokenizer folder, checked against those recorded ids before any test
uses it:

- ``llama-bpe`` (Llama 3, 3.1, 3.2): the byte-level BPE with Meta's pre-tokenizer, whole words taken from the
  vocabulary before merges (``ignore_merges``, as the original tokenizer.json says), and the beginning-of-text token
  put in front;
- ``llama-spm`` (Llama 2, TinyLlama): a SentencePiece model written from the vocabulary's pieces, scores and types
  with Llama 2's trainer settings (byte fallback, digits split, a dummy space prefix).

``model(out, family)`` then writes a tiny random-weight LLaMA with a family's tokenizer, special tokens, chat template
and generation settings, as its model card on the hub has them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import TEST_CACHE

SDIST = "llama-cpp-python==0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VOCABS = ("llama-bpe", "llama-spm", "deepseek-llm")
TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
CASES_SEPARATOR = "\n__ggml_vocab_test__\n"


@dataclass(frozen=True)
class Family:
    vocab: str
    template: str  # file in tests/data/chat_templates
    bos: str
    eos: str  # the tokenizer's end-of-sequence token, as the instruct model's tokenizer_config sets it
    generation_eos: tuple[str, ...]  # generation_config.json's eos_token_id, by token text
    renamed: dict = field(default_factory=dict)  # id → the text a later release gives a reserved token
    config: dict = field(default_factory=dict)  # LlamaConfig fields beyond the tiny defaults


_LLAMA31_TOKENS = {128004: "<|finetune_right_pad_id|>", 128008: "<|eom_id|>", 128010: "<|python_tag|>"}
_LLAMA31_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                 "high_freq_factor": 4.0, "original_max_position_embeddings": 256}
FAMILIES = {
    "llama3": Family("llama-bpe", "llama3.jinja", "<|begin_of_text|>", "<|eot_id|>", ("<|end_of_text|>", "<|eot_id|>"),
                     config={"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}),
    "llama3.1": Family("llama-bpe", "llama31.jinja", "<|begin_of_text|>", "<|eot_id|>",
                       ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"), _LLAMA31_TOKENS,
                       config={"rope_parameters": _LLAMA31_ROPE, "tie_word_embeddings": False}),
    "llama3.2": Family("llama-bpe", "llama32.jinja", "<|begin_of_text|>", "<|eot_id|>",
                       ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"), _LLAMA31_TOKENS,
                       config={"rope_parameters": {**_LLAMA31_ROPE, "factor": 32.0}, "tie_word_embeddings": True}),
    "llama2": Family("llama-spm", "llama2.jinja", "<s>", "</s>", ("</s>",),
                     config={"tie_word_embeddings": False, "rope_parameters": {"rope_type": "default",
                                                                              "rope_theta": 10000.0}}),
    "tinyllama": Family("llama-spm", "zephyr.jinja", "<s>", "</s>", ("</s>",),
                        config={"tie_word_embeddings": False}),
}


def _cache() -> Path:
    return TEST_CACHE / "real-tokenizers"


def vocab_folder() -> Path:
    """The vocabulary GGUF files and their recorded cases, extracted from the verified source distribution."""
    folder = _cache() / "vocab"
    if all((folder / f"ggml-vocab-{name}.gguf").is_file() for name in VOCABS):
        return folder
    archive = _sdist()
    staging = folder.with_name("vocab.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(archive) as sdist:
        for member in sdist.getmembers():
            name = Path(member.name).name
            if member.isfile() and any(name.startswith(f"ggml-vocab-{v}.gguf") for v in VOCABS):
                with sdist.extractfile(member) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _sdist() -> Path:
    downloads = TEST_CACHE / "cache" / "downloads"
    archive = downloads / SDIST_FILE
    if not archive.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "--disable-pip-version-check", SDIST, "-d", str(downloads)], check=True, timeout=900)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        archive.unlink()
        raise RuntimeError(f"{archive} has sha256 {digest}, not the published {SDIST_SHA256}; deleted, run again")
    return archive


def recorded_cases(vocab: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test texts and the ids the original Hugging Face tokenizer gave for each."""
    folder = vocab_folder()
    texts = (folder / f"ggml-vocab-{vocab}.gguf.inp").read_text(encoding="utf-8").split(CASES_SEPARATOR)
    ids = (folder / f"ggml-vocab-{vocab}.gguf.out").read_text(encoding="utf-8").split("\n")
    return [(text, [int(i) for i in line.split()]) for text, line in zip(texts, ids)]


# ---- the Hugging Face tokenizers -------------------------------------------------------------------------------

def base_tokenizer(vocab: str) -> Path:
    """A Hugging Face tokenizer folder for a vocabulary, built once per machine and checked against its cases."""
    folder = _cache() / f"hf-{vocab}"
    if (folder / "tokenizer_config.json").is_file():
        return folder
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if vocab == "llama-spm":
        _sentencepiece_folder(vocab_folder() / f"ggml-vocab-{vocab}.gguf", staging)
    else:
        _byte_level_folder(vocab, staging)
    mismatches = _mismatches(staging, vocab)
    if mismatches:
        raise AssertionError(f"the rebuilt {vocab} tokenizer differs from the original on {mismatches[:3]}")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _mismatches(folder: Path, vocab: str) -> list:
    """The recorded cases the rebuilt vocabulary tokenizes differently. A SentencePiece vocabulary is checked with
    sentencepiece itself: transformers 5 reads any tokenizer.json of a LlamaTokenizer with a Metaspace pre-tokenizer
    that adds no space prefix to a text that already starts with a space (15 of the 47 cases), whatever the file says."""
    if (folder / "tokenizer.model").is_file():
        from sentencepiece import SentencePieceProcessor

        encode = SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).encode
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        encode = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    return [(text, ids) for text, ids in recorded_cases(vocab) if encode(text) != ids]


def _byte_level_folder(vocab: str, out: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    loaded = AutoTokenizer.from_pretrained(vocab_folder(), gguf_file=f"ggml-vocab-{vocab}.gguf")
    state = json.loads(loaded.backend_tokenizer.to_str())
    if vocab == "llama-bpe":
        state["model"]["ignore_merges"] = True  # Meta's tokenizer.json: a word in the vocabulary is one token
    bos = loaded.bos_token
    state["post_processor"] = {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": bos, "type_id": 1}},
                                        {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {bos: {"id": bos, "ids": [loaded.bos_token_id], "tokens": [bos]}}}
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(state)), bos_token=bos,
                                   eos_token=loaded.eos_token, clean_up_tokenization_spaces=False)
    fast.save_pretrained(out)


def _sentencepiece_folder(gguf_path: Path, out: Path) -> None:
    """tokenizer.model from the vocabulary's pieces, scores and types, with Llama 2's trainer settings."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as proto
    from transformers import AutoTokenizer

    reader = gguf.GGUFReader(gguf_path)
    field_of = {f.name: f for f in reader.fields.values()}
    pieces = [bytes(field_of["tokenizer.ggml.tokens"].parts[i]).decode("utf-8")
              for i in field_of["tokenizer.ggml.tokens"].data]
    scores = [float(field_of["tokenizer.ggml.scores"].parts[i][0]) for i in field_of["tokenizer.ggml.scores"].data]
    types = [int(field_of["tokenizer.ggml.token_type"].parts[i][0]) for i in field_of["tokenizer.ggml.token_type"].data]
    model = proto.ModelProto()
    kind = {1: proto.ModelProto.SentencePiece.NORMAL, 2: proto.ModelProto.SentencePiece.UNKNOWN,
            3: proto.ModelProto.SentencePiece.CONTROL, 4: proto.ModelProto.SentencePiece.USER_DEFINED,
            5: proto.ModelProto.SentencePiece.UNUSED, 6: proto.ModelProto.SentencePiece.BYTE}
    for piece, score, token_type in zip(pieces, scores, types):
        model.pieces.add(piece=piece, score=score, type=kind[token_type])
    trainer = model.trainer_spec
    trainer.model_type = proto.TrainerSpec.BPE
    trainer.vocab_size = len(pieces)
    trainer.byte_fallback = trainer.split_digits = True
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, -1
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = False
    (out / "tokenizer.model").write_bytes(model.SerializeToString())
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": True}), encoding="utf-8")
    AutoTokenizer.from_pretrained(out).save_pretrained(out)
    # transformers 5 builds a LlamaTokenizer's pre-tokenization from its "legacy" flag: only with it does every piece
    # after a special token get the space prefix, as sentencepiece gives it. save_pretrained drops the flag.
    settings = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    (out / "tokenizer_config.json").write_text(json.dumps({**settings, "legacy": True}, indent=2), encoding="utf-8")


# ---- the families' tokenizers and tiny models ------------------------------------------------------------------

def tokenizer_folder(family: str) -> Path:
    """A family's tokenizer as its instruct model ships it: its special tokens, end-of-sequence and chat template."""
    spec = FAMILIES[family]
    folder = _cache() / f"tokenizer-{family}"
    if (folder / "tokenizer_config.json").is_file():
        return folder
    from transformers import AutoTokenizer

    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(base_tokenizer(spec.vocab), staging)
    if spec.renamed:
        _rename_tokens(staging / "tokenizer.json", spec.renamed)
    tokenizer = AutoTokenizer.from_pretrained(staging)
    tokenizer.eos_token = spec.eos
    tokenizer.chat_template = (TEMPLATES / spec.template).read_text(encoding="utf-8")
    tokenizer.save_pretrained(staging)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _rename_tokens(path: Path, renamed: dict) -> None:
    state = json.loads(path.read_text(encoding="utf-8"))
    for token in state["added_tokens"]:
        if token["id"] in renamed:
            token["content"] = renamed[token["id"]]
    vocab = state["model"]["vocab"]
    for piece in [piece for piece, i in vocab.items() if i in renamed]:  # present when the vocabulary lists them
        number = vocab.pop(piece)
        vocab[renamed[number]] = number
    path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")


def model(out: Path, family: str, *, seed: int = 0, **config) -> Path:
    """A tiny random-weight LLaMA (2 layers, hidden 64) with a family's real tokenizer and settings."""
    from transformers import AutoTokenizer, GenerationConfig

    from engine.heavy.models.random_weights import write_model

    spec = FAMILIES[family]
    tokenizer_dir = tokenizer_folder(family)
    folder = write_model(out, tokenizer_dir, seed=seed, **{"initializer_range": 0.4, **spec.config, **config})
    if (tokenizer_dir / "tokenizer.model").is_file():
        shutil.copy2(tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = tokenizer.get_vocab()
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=[vocab[t] for t in spec.generation_eos],
                     do_sample=True, temperature=0.6, top_p=0.9).save_pretrained(folder)
    return folder
