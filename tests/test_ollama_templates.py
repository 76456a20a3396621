"""The Ollama Modelfile an export writes, read and rendered by a real Go text/template engine the way Ollama reads
and renders it (tests/ollama_modelfile.py): for each chat-template family, the TEMPLATE gives exactly the prompt the
model's Jinja template gives (the text training tokenized), and the stop list covers every end-of-turn token.

The Jinja templates of Llama 2, Llama 3, Llama 3.1 and TinyLlama are written for these tests in
tests/data/chat_templates; ChatML is the demo model's own template, and LlamaDesk's default is the bundled one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import resources
from engine.heavy.end_of_turn import end_of_turn_tokens
from engine.heavy.export import ollama
from engine.heavy.export.gguf_file import adds_bos
from tests import ollama_modelfile

HERE = Path(__file__).parent
TEMPLATES = HERE / "data" / "chat_templates"

CONVERSATIONS = [
    *ollama.PROBES,
    [{"role": "system", "content": "You answer in one sentence."},
     {"role": "user", "content": "Who keeps the lighthouse?"},
     {"role": "assistant", "content": "The keeper of the north light."},
     {"role": "user", "content": "And how long has it stood?"},
     {"role": "assistant", "content": "Since 1852."},
     {"role": "user", "content": "Say \"{{ .Role }}\" and a brace } – café, 灯台"}],
]


def _with_tokens(tokenizer, bos: str, eos: str, extra: tuple[str, ...] = ()):
    tokenizer.add_special_tokens({"bos_token": bos, "eos_token": eos,
                                  "additional_special_tokens": [t for t in extra if t not in (bos, eos)]})
    return tokenizer


def family_tokenizer(name: str, base):
    """The demo tokenizer dressed as each family: its special tokens and chat template."""
    if name == "chatml":
        return base
    if name == "llamadesk":
        base.chat_template = resources.path("default_chat_template.jinja").read_text(encoding="utf-8")
        return base
    if name in ("llama2", "zephyr"):
        tokenizer = _with_tokens(base, "<s>", "</s>")
    else:
        tokenizer = _with_tokens(base, "<|begin_of_text|>", "<|eot_id|>",
                                 ("<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"))
    tokenizer.chat_template = (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
    return tokenizer


def expected(tokenizer, conversation: list) -> str:
    """The Jinja prompt, less the beginning-of-sequence token when the runtime adds it."""
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    return text[len(bos):] if bos and adds_bos(tokenizer) and text.startswith(bos) else text


FAMILIES = {"chatml": "chatml", "llamadesk": "llamadesk", "llama2": "llama2", "llama3": "llama3",
            "llama31": "llama3.1", "zephyr": "zephyr"}


@pytest.mark.parametrize("template", list(FAMILIES))
def test_the_modelfile_template_renders_what_the_jinja_template_renders(template, fresh_tokenizer, modelfile_reader):
    tokenizer = family_tokenizer(template, fresh_tokenizer)
    text, made = ollama.modelfile(tokenizer, "tuned-q4_k_m.gguf", context=4096)
    assert made["family"] == FAMILIES[template]

    read = ollama_modelfile.read(modelfile_reader, text, CONVERSATIONS)
    assert read["from"] == "./tuned-q4_k_m.gguf"
    assert read["parameters"]["num_ctx"] == ["4096"]
    for conversation, prompt in zip(CONVERSATIONS, read["prompts"]):
        assert prompt == expected(tokenizer, conversation), conversation
    ends = end_of_turn_tokens(tokenizer)
    assert ends and set(ends) <= set(read["parameters"]["stop"])
    assert ollama.stops_in(text) == read["parameters"]["stop"], "Python reads the stop list back as Go does"


def test_the_families_are_told_apart_and_an_unknown_template_is_refused(fresh_tokenizer):
    """Llama 3 and 3.1 share their headers; the 3.1 family needs the system turn with its preamble."""
    llama3 = family_tokenizer("llama3", fresh_tokenizer)
    assert ollama.family_of(llama3).name == "llama3"
    llama3.chat_template = (TEMPLATES / "llama31.jinja").read_text(encoding="utf-8")
    assert ollama.family_of(llama3).name == "llama3.1"
    assert ollama.tokens_of(llama3)["preamble"] == "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    llama3.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    with pytest.raises(ollama.TemplateUnsupported, match="not one LlamaDesk can write"):
        ollama.modelfile(llama3, "x.gguf", context=2048)


def test_a_system_prompt_in_the_modelfile_is_the_conversations_first_message(fresh_tokenizer, modelfile_reader):
    tokenizer = family_tokenizer("llama3", fresh_tokenizer)
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048, system='Answer as a "harbour master".\nBe brief.')
    question = [{"role": "user", "content": "Who keeps the lighthouse?"}]
    read = ollama_modelfile.read(modelfile_reader, text, [question])
    assert read["system"] == 'Answer as a "harbour master".\nBe brief.'
    assert read["prompts"] == [expected(tokenizer, [{"role": "system", "content": read["system"]}, *question])]


def test_the_bos_token_is_written_when_the_tokenizer_does_not_add_it(fresh_tokenizer, modelfile_reader):
    """SmolLM2's tokenizer adds no BOS; the LlamaDesk default template starts with it, so the Modelfile writes it."""
    tokenizer = family_tokenizer("llamadesk", fresh_tokenizer)
    assert not adds_bos(tokenizer)
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    prompt = ollama_modelfile.read(modelfile_reader, text, [ollama.PROBES[0]])["prompts"][0]
    assert prompt.startswith(tokenizer.bos_token + "### User:\n")
