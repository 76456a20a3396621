"""The Ollama Modelfile an export writes, read and rendered by a real Go text/template engine the way Ollama reads
and renders it (tests/ollama_modelfile.py): for each chat-template family, the TEMPLATE gives exactly the prompt the
model's Jinja template gives (the text training tokenized) and the family's Python rules give, the stop list covers
every end-of-turn token, and the SYSTEM prompt reads back as written.

The Jinja templates of Llama 2, Llama 3, Llama 3.1 and TinyLlama are written for these tests in
tests/data/chat_templates; llama32.jinja is Meta's Llama 3.2 Instruct template as published (it writes today's date);
ChatML is the demo model's own template, and LlamaDesk's default is the bundled one.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import jinja2
import pytest
from transformers.utils import chat_template_utils

import resources
from engine.heavy.end_of_turn import end_of_turn_tokens
from engine.heavy.export import ollama
from engine.heavy.export.gguf_file import adds_bos
from engine.light.errors import UserError
from tests import ollama_modelfile

HERE = Path(__file__).parent
TEMPLATES = HERE / "data" / "chat_templates"
DAY = date(2030, 2, 14)  # the day the date functions of both engines see, unless a test says otherwise

CONVERSATIONS = [
    *ollama.PROBES,
    [{"role": "system", "content": "You answer in one sentence."},
     {"role": "user", "content": "Who keeps the lighthouse?"},
     {"role": "assistant", "content": "The keeper of the north light."},
     {"role": "user", "content": "And how long has it stood?"},
     {"role": "assistant", "content": "Since 1852."},
     {"role": "user", "content": "Say \"{{ .Role }}\" and a brace } – café, 灯台"}],
]

WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())  # what str.strip() and Jinja's trim remove

AWKWARD = (  # contents the families trim or keep as they are
    "  padded on both sides  ",
    "\n\nLeading blank lines",
    "Trailing blank lines\n\n",
    "\t\r\n tabs, CR LF and spaces around \r\n\t",
    '{{ .Content }}, {{ end }}, "quotes", \'single\', a \\ backslash and }}{{',
    "café, 灯台, 😀 and ﷽ inside",
    "\u00a0\u2003no-break and em spaces, a full-width one after\u3000\u0085",
    "\x1c file and unit separators \x1f",
    "ends in a wide letter 灯",
    "é\u00a0",
    "\u2028",
    "",
    " \n\t ",
    WHITESPACE + "every kind of whitespace around" + WHITESPACE[::-1],
    WHITESPACE,
    " " * 3000 + "deep in whitespace" + "\n" * 3000,  # one level of template recursion per character trimmed
)


def _user(content: str) -> dict:
    return {"role": "user", "content": content}


def _assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def _system(content: str) -> dict:
    return {"role": "system", "content": content}


AGREEMENT = [
    *([_user(c)] for c in AWKWARD),
    *([_system(c), _user("Hi"), _assistant(c), _user(c)] for c in AWKWARD),
    [_system("  Only a system prompt, padded.\n")],
    [_system("")],
    [_system(""), _user("An empty system prompt before me")],
    [_user("One"), _assistant(""), _user("   ")],
    [_user(AWKWARD[0]), _assistant(AWKWARD[1]), _user(AWKWARD[2]), _assistant(AWKWARD[3]), _user(AWKWARD[4]),
     _assistant(AWKWARD[5]), _user(AWKWARD[6])],
    [_user("Hi"), _assistant("Hello"), _system("  A system turn in the middle \n"), _user("Go on")],
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


def as_ollama_renders(tokenizer, text: str) -> str:
    """A prompt less the beginning-of-sequence token when the runtime adds it (the Modelfile leaves it out then)."""
    bos = tokenizer.bos_token or ""
    return text[len(bos):] if bos and adds_bos(tokenizer) and text.startswith(bos) else text


@contextmanager
def transformers_clock(day: date | None):
    """transformers' strftime_now, which templates call for today's date, reads datetime.now() of its chat-template
    module: there, the day is fixed (left alone for None)."""
    class Fixed(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(day.year, day.month, day.day, 12)

    with pytest.MonkeyPatch.context() as patch:
        if day is not None:
            patch.setattr(chat_template_utils, "datetime", Fixed)
        yield


def expected(tokenizer, conversation: list, day: date | None = DAY) -> str:
    """The Jinja prompt on ``day`` (transformers' own clock when None), as Ollama should render it."""
    with transformers_clock(day):
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return as_ollama_renders(tokenizer, text)


FAMILIES = {"chatml": "chatml", "llamadesk": "llamadesk", "llama2": "llama2", "llama3": "llama3",
            "llama31": "llama3.1", "llama32": "llama3.1", "zephyr": "zephyr"}


@pytest.mark.parametrize("template", list(FAMILIES))
def test_the_modelfile_template_renders_what_the_jinja_template_renders(template, fresh_tokenizer, modelfile_reader):
    tokenizer = family_tokenizer(template, fresh_tokenizer)
    text, made = ollama.modelfile(tokenizer, "tuned-q4_k_m.gguf", context=4096)
    assert made["family"] == FAMILIES[template]

    read = ollama_modelfile.read(modelfile_reader, text, CONVERSATIONS, today=DAY.isoformat())
    assert read["from"] == "./tuned-q4_k_m.gguf"
    assert read["parameters"]["num_ctx"] == ["4096"]
    for conversation, prompt in zip(CONVERSATIONS, read["prompts"]):
        assert prompt == expected(tokenizer, conversation), conversation
    ends = end_of_turn_tokens(tokenizer)
    assert ends and set(ends) <= set(read["parameters"]["stop"])
    assert ollama.stops_in(text) == read["parameters"]["stop"], "Python reads the stop list back as Go does"


def _trained(tokenizer, conversation: list) -> str | None:
    """The Jinja prompt, or None for a conversation the template refuses (Llama 2's roles must alternate)."""
    try:
        return expected(tokenizer, conversation)
    except jinja2.TemplateError:
        return None


# Each family with a tokenizer that adds no beginning-of-sequence token (SmolLM2's) and, but for ChatML (whose BOS is
# its role marker), with one that does: Ollama's runtime adds it then, and the Modelfile leaves it out.
BOS_CASES = [*((name, False) for name in FAMILIES), *((name, True) for name in FAMILIES if name != "chatml")]


@pytest.mark.parametrize(("template", "runtime_bos"), BOS_CASES)
def test_python_rules_go_template_and_jinja_agree_on_every_conversation(template, runtime_bos, fresh_tokenizer,
                                                                         modelfile_reader):
    """Surrounding whitespace of every kind (trimmed by the Llama families, kept by the others), braces, quotes,
    unicode, empty contents, a system prompt alone and several turns: the three renderings are the same text."""
    tokenizer = family_tokenizer(template, fresh_tokenizer)
    tokenizer.add_bos_token = runtime_bos
    assert adds_bos(tokenizer) == runtime_bos
    family, tokens = ollama.family_of(tokenizer), {**ollama.tokens_of(tokenizer), "today": DAY}
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    trained = [(c, jinja) for c in AGREEMENT if (jinja := _trained(tokenizer, c)) is not None]
    assert len(trained) >= len(AGREEMENT) - 1

    read = ollama_modelfile.read(modelfile_reader, text, [c for c, _ in trained], today=DAY.isoformat())
    for (conversation, jinja), go in zip(trained, read["prompts"]):
        assert go == as_ollama_renders(tokenizer, family.render(conversation, tokens)), conversation
        assert go == jinja, conversation


def test_the_go_template_trims_the_whitespace_python_trims():
    """The Go template trims the characters str.strip() and Jinja's trim do, which the export finds below U+3001."""
    assert ollama.WHITESPACE == WHITESPACE


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


def _month_days() -> list[date]:
    """A day of every month, single- and double-digit days, a leap day and a year's first and last."""
    days = (1, 9, 10, 11, 28, 30, 31, 15, 2, 3, 19, 7)
    return [*(date(2026, month, day) for month, day in zip(range(1, 13), days)),
            date(2028, 2, 29), date(2027, 1, 1), date(2027, 12, 31)]


def test_llama32_writes_the_day_ollama_renders_on_not_the_export_day(fresh_tokenizer, modelfile_reader):
    """Meta's Llama 3.2 template puts today's date in its preamble; the Modelfile must not freeze the export's day."""
    tokenizer = family_tokenizer("llama32", fresh_tokenizer)
    family, tokens = ollama.family_of(tokenizer), ollama.tokens_of(tokenizer)
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    assert text.startswith("# ") and ollama.CURRENT_DATE_SINCE in text.splitlines()[0], "it says which Ollama it needs"
    question = [_system(" Be brief. "), _user("What day is it?")]
    for day in _month_days():
        prompt = ollama_modelfile.read(modelfile_reader, text, [question], today=day.isoformat())["prompts"][0]
        assert prompt == expected(tokenizer, question, day)
        assert prompt == as_ollama_renders(tokenizer, family.render(question, {**tokens, "today": day}))
        assert f"Today Date: {day.strftime('%d %b %Y')}\n\n" in prompt


def test_llama32_reads_ollamas_clock(fresh_tokenizer, modelfile_reader):
    """With the real clock on both sides, the prompt is the one transformers renders today (either side of a
    midnight that falls between the renderings)."""
    tokenizer = family_tokenizer("llama32", fresh_tokenizer)
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    question = [_user("What day is it?")]
    before = expected(tokenizer, question, day=None)
    prompt = ollama_modelfile.read(modelfile_reader, text, [question])["prompts"][0]
    assert prompt in (before, expected(tokenizer, question, day=None))


def test_llama31_keeps_its_fixed_date(fresh_tokenizer, modelfile_reader):
    tokenizer = family_tokenizer("llama31", fresh_tokenizer)
    text, made = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    assert "currentDate" not in made["template"]
    for day in (DAY, date(2030, 5, 17)):
        prompt = ollama_modelfile.read(modelfile_reader, text, [[_user("Hi")]], today=day.isoformat())["prompts"][0]
        assert prompt == expected(tokenizer, [_user("Hi")], day)
        assert "Today Date: 26 Jul 2024\n\n" in prompt


@pytest.mark.parametrize("written", ["%Y-%m-%d", "%B %d, %Y", "%d/%m/%y", "%d %b %Y (100%%)"])
def test_other_date_formats_a_template_asks_for(written, fresh_tokenizer, modelfile_reader):
    tokenizer = family_tokenizer("llama32", fresh_tokenizer)
    tokenizer.chat_template = tokenizer.chat_template.replace('strftime_now("%d %b %Y")', f'strftime_now("{written}")')
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    question = [_user("What day is it?")]
    for day in _month_days():
        prompt = ollama_modelfile.read(modelfile_reader, text, [question], today=day.isoformat())["prompts"][0]
        assert prompt == expected(tokenizer, question, day)


def test_a_default_system_prompt_with_todays_date(fresh_tokenizer, modelfile_reader):
    """A ChatML template whose default system prompt tells the model the date writes Ollama's day too."""
    tokenizer = family_tokenizer("chatml", fresh_tokenizer)
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "Hugging Face<|im_end|>", "Hugging Face. Today is ' + strftime_now('%B %d, %Y') + '.<|im_end|>")
    assert "strftime_now" in tokenizer.chat_template
    text, made = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    assert made["family"] == "chatml"
    question = [_user("What day is it?")]
    for day in _month_days():
        prompt = ollama_modelfile.read(modelfile_reader, text, [question], today=day.isoformat())["prompts"][0]
        assert prompt == expected(tokenizer, question, day)
        assert f"Today is {day.strftime('%B %d, %Y')}." in prompt


def test_a_date_format_ollama_cannot_write_is_refused(fresh_tokenizer):
    tokenizer = family_tokenizer("llama32", fresh_tokenizer)
    tokenizer.chat_template = tokenizer.chat_template.replace('strftime_now("%d %b %Y")', 'strftime_now("%A %d %b")')
    with pytest.raises(ollama.TemplateUnsupported, match="today's date as '%A %d %b'"):
        ollama.modelfile(tokenizer, "x.gguf", context=2048)


WRITABLE_SYSTEMS = [
    'Answer as a "harbour master".\nBe brief.',
    'Quote docstrings as """text""" on one line.',
    'Ends with three quotes """',
    '"""Starts with three quotes\nand goes on',
    "\n  Blank lines and spaces around  \n\n",
    "Tabs\tand CR LF\r\nline ends",
    '""',
    '"',
    'A line ending in a quote "\nand another',
    'A line ending in two quotes ""\nand another',
    "café, 灯台, 😀",
]


@pytest.mark.parametrize("system", WRITABLE_SYSTEMS)
def test_a_system_prompt_reads_back_exactly(system, fresh_tokenizer, modelfile_reader):
    tokenizer = family_tokenizer("chatml", fresh_tokenizer)
    text, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048, system=system)
    question = [_user("Who keeps the lighthouse?")]
    read = ollama_modelfile.read(modelfile_reader, text, [question])
    assert read["system"] == system
    assert read["prompts"] == [expected(tokenizer, [_system(system), *question])]


UNWRITABLE_SYSTEMS = {
    'Wrap code in """\nlike this.': 'line 1 of the system prompt ends with three double quotes',
    'Docstring:\n"""  \t\nbody': 'line 2 of the system prompt ends with three double quotes',
    "A no-break\u00a0space": "U\\+00A0",
    "A zero-width joiner: 👩\u200d💻": "U\\+200D",
    "A bell \x07 rings": "U\\+0007",
}


@pytest.mark.parametrize("system", list(UNWRITABLE_SYSTEMS))
def test_a_system_prompt_a_modelfile_cannot_hold_is_refused(system, fresh_tokenizer, modelfile_reader):
    """Ollama's parser would read these back changed or not at all; the export says so instead of writing them."""
    tokenizer = family_tokenizer("chatml", fresh_tokenizer)
    plain, _ = ollama.modelfile(tokenizer, "x.gguf", context=2048)
    naive = ollama_modelfile.attempt(modelfile_reader, plain + f'SYSTEM """{system}"""\n', [])
    assert naive.returncode != 0 or json.loads(naive.stdout)["system"] != system

    with pytest.raises(UserError, match=UNWRITABLE_SYSTEMS[system]) as refused:
        ollama.modelfile(tokenizer, "x.gguf", context=2048, system=system)
    assert "system prompt" in refused.value.message and refused.value.hint


READER_CASES = {  # Modelfile values and what Ollama's parser (parser/parser.go) reads from them
    'SYSTEM """\nTwo\nlines\n"""': "\nTwo\nlines\n",
    'SYSTEM """a"""b"""': 'a"""b',
    'SYSTEM """a""""""': 'a"""',
    'SYSTEM """"""': "",
    'SYSTEM ""': "",
    'SYSTEM "a "quoted" word"': 'a "quoted" word',
    'SYSTEM "no \\"escapes\\""': 'no \\"escapes\\"',
    "SYSTEM   plain text  ": "plain text",
    'SYSTEM """a\u00a0b\u200dc\td"""': "abc\td",
    'SYSTEM """one\r\ntwo"""': "one\r\ntwo",
}


@pytest.mark.parametrize("value", list(READER_CASES))
def test_the_go_reader_reads_values_as_ollamas_parser(value, modelfile_reader):
    modelfile = f'# a comment\nFROM ./x.gguf\nTEMPLATE """{{{{ range .Messages }}}}{{{{ end }}}}"""\n{value}\n'
    assert ollama_modelfile.read(modelfile_reader, modelfile, [])["system"] == READER_CASES[value]


@pytest.mark.parametrize("value", ['SYSTEM """a"""\nb"""', 'SYSTEM """open', 'SYSTEM "open', "SYSTEM3 x"])
def test_the_go_reader_refuses_what_ollamas_parser_refuses(value, modelfile_reader):
    modelfile = f'FROM ./x.gguf\nTEMPLATE """{{{{ range .Messages }}}}{{{{ end }}}}"""\n{value}\n'
    assert ollama_modelfile.attempt(modelfile_reader, modelfile, []).returncode != 0


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
