"""The Ollama export: a Modelfile beside the GGUF, whose TEMPLATE renders a conversation exactly as the model's chat
template does, with a stop parameter for every end-of-turn token.

Ollama renders prompts with Go's text/template over its own message structure (``.Messages`` of ``.Role`` and
``.Content``), not with the model's Jinja template, so each chat-template family gets a Go template written here.
The family is recognised by rendering probe conversations with the model's own template and comparing them with
the family's rules (``Family.render``); tests/test_ollama_templates.py renders every Go template with a real Go
text/template engine and proves it gives the same text as the Jinja template. A template of no known family is refused
with a message: the GGUF alone still carries the Jinja template, which llama.cpp and LM Studio use.

Training tokenizes the rendered text as it is, special tokens included. Ollama's runtime adds the beginning-of-sequence
token itself when the GGUF says the tokenizer does (``add_bos_token``, set from what the tokenizer does), so the
template leaves it out then, and writes it as text otherwise.

Go templates in Ollama have text/template's built-in functions and the few Ollama's template package adds
(template/template.go: json, currentDate and yesterdayDate, which write YYYY-MM-DD whatever format is asked, and
toTypeScriptType). None trims text, so the trimming the Llama templates do (Jinja's ``trim``, Python's ``str.strip``)
is written here as recursive Go templates; today's date, which a template writes with transformers' ``strftime_now``
(Llama 3.2's), is cut from currentDate's YYYY-MM-DD into the template's format. Ollama's Modelfile parser
(parser/parser.go) reads values without escapes, so a value it cannot read back exactly is refused.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

from engine.heavy.end_of_turn import end_of_turn_tokens
from engine.heavy.export.gguf_file import adds_bos
from engine.light.errors import UserError

PROBES = (  # conversations that tell the families apart and cover system prompts and several turns
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Who keeps the lighthouse?"}],
    [{"role": "user", "content": "One"}, {"role": "assistant", "content": "Two"}, {"role": "user", "content": "Three"}],
)


class TemplateUnsupported(UserError):
    kind = "template"


class ModelfileUnwritable(UserError):
    kind = "export"


@dataclass(frozen=True)
class Family:
    name: str
    render: Callable[[list[dict], dict], str]  # the family's rules, in Python: (messages, tokens) → prompt text
    go: Callable[[dict], str]  # the Go template, for the tokens and default system prompt found
    stops: tuple[str, ...]  # role markers that also end a reply
    opens_with_bos: bool = True  # the Jinja template always starts with the beginning-of-sequence token


# ---- literal text in a Go template -----------------------------------------------------------------------------

_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _printable(c: str) -> bool:
    """What Go's strconv.IsPrint keeps: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return c == " " or unicodedata.category(c)[0] in "LMNPS"


def _go_string(text: str) -> str:
    """A Go string literal of the text; what the Modelfile parser would drop is written as an escape."""
    return '"' + "".join(_GO_ESCAPES.get(c) or (c if _printable(c) else _go_escape(c)) for c in text) + '"'


def _go_escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"


def _go_text(text: str) -> str:
    """Literal text inside a Go template, as a quoted string action: braces and quotes in it stay text."""
    return "{{ " + _go_string(text) + " }}" if text else ""


def _go_chain(branches: list[tuple[str, str]], otherwise: str = "") -> str:
    """{{ if test }}text{{ else if test }}text … {{ else }}otherwise{{ end }}, from (test, text) pairs."""
    chain = "".join(f"{{{{ {'else if' if i else 'if'} {test} }}}}{text}" for i, (test, text) in enumerate(branches))
    return chain + (f"{{{{ else }}}}{otherwise}" if otherwise else "") + "{{ end }}"


# ---- trimming, as Jinja's trim does it -------------------------------------------------------------------------

# What str.strip() and Jinja's trim remove (none lies above U+3000; the tests check the whole of Unicode).
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())


def _whitespace_go(utf8_length: int | None = None) -> str:
    """The whitespace characters (of one UTF-8 length, or all) as Go string literals, the arguments of an eq."""
    return " ".join(_go_string(c) for c in WHITESPACE if utf8_length in (None, len(c.encode())))


def _trailing_whitespace_go(length: int) -> list[tuple[str, str]]:
    """The branches of "trimmed-end" for a trailing whitespace character of ``length`` bytes: a text too short for
    one is written as it is; one that ends with one goes on without it. text/template has no arithmetic, and
    ``len (slice . n)`` is the length less n. Slicing a string copies nothing, so trimming stays linear."""
    too_short = [(f"lt (len .) {length}", "{{ . }}")] if length > 1 else []
    return too_short + [(f"eq (slice . (len (slice . {length}))) {_whitespace_go(length)}",
                         f'{{{{ template "trimmed-end" (slice . 0 (len (slice . {length}))) }}}}')]


# Ollama's template functions trim nothing (text/template's {{- -}} trims the template's own text, not a value), so
# "trimmed" drops leading whitespace a character at a time (printf "%.1s" is the first character, however many bytes
# it takes) and "trimmed-end" drops trailing whitespace, whose characters are 1 to 3 bytes of UTF-8. Each dropped
# character is one level of recursion; text/template allows 100000.
TRIMMED_GO = (
    '{{- define "trimmed" }}'
    + _go_chain([("not .", ""), (f'eq (printf "%.1s" .) {_whitespace_go()}',
                                 '{{ template "trimmed" (slice . (len (printf "%.1s" .))) }}')],
                otherwise='{{ template "trimmed-end" . }}')
    + '{{ end }}{{- define "trimmed-end" }}'
    + _go_chain([branch for n in (1, 2, 3) for branch in _trailing_whitespace_go(n)], otherwise="{{ . }}")
    + "{{ end }}"
)


def _trimmed(value: str) -> str:
    """The Go action writing a value (a pipeline such as .Content) trimmed; its template needs TRIMMED_GO."""
    return '{{ template "trimmed" ' + value + " }}"


# ---- today's date, as strftime_now writes it -------------------------------------------------------------------

DATE_MARK = "\ue000"  # a private-use character: a date the chat template writes is its format between two of them
# transformers gives templates strftime_now (today's date); this macro shadows it, marking where a date goes and how
_MARKED_DATES = "{% macro strftime_now(fmt) %}" + DATE_MARK + "{{ fmt }}" + DATE_MARK + "{% endmacro %}\n"
_MARKED = re.compile(DATE_MARK + "(.*?)" + DATE_MARK, re.S)
PROBE_DAY = date(2025, 11, 3)  # the day the probe conversations are compared on
CURRENT_DATE_SINCE = "0.11.1"  # the first Ollama release whose templates have currentDate
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _month_go(length: int | None) -> str:
    """The month's name (its first ``length`` letters) from $today, Ollama's currentDate (YYYY-MM-DD)."""
    months = enumerate(MONTHS, 1)
    return _go_chain([(f'eq (slice $today 5 7) "{number:02d}"', name[:length]) for number, name in months])


DATE_FIELDS = {  # strftime directive: (its text for a day, in C's English; the Go template writing it from $today)
    "d": (lambda day: f"{day.day:02d}", "{{ slice $today 8 10 }}"),
    "m": (lambda day: f"{day.month:02d}", "{{ slice $today 5 7 }}"),
    "Y": (lambda day: f"{day.year:04d}", "{{ slice $today 0 4 }}"),
    "y": (lambda day: f"{day.year % 100:02d}", "{{ slice $today 2 4 }}"),
    "b": (lambda day: MONTHS[day.month - 1][:3], _month_go(3)),
    "B": (lambda day: MONTHS[day.month - 1], _month_go(None)),
    "%": (lambda day: "%", "%"),
}


def _date_parts(fmt: str) -> list[str]:
    """The strftime format split into literal text and directives, alternately; one Go cannot write is refused."""
    parts = re.split(r"(%.?)", fmt, flags=re.S)
    if any(directive[1:] not in DATE_FIELDS for directive in parts[1::2]):
        raise TemplateUnsupported(f"this model's chat template writes today's date as '{fmt}', which LlamaDesk "
                                  "cannot write for Ollama",
                                  hint="export GGUF instead (it carries the template for llama.cpp and LM Studio) and "
                                  "write the Modelfile's TEMPLATE yourself")
    return parts


def _format_date(day: date, fmt: str) -> str:
    return "".join(DATE_FIELDS[part[1:]][0](day) if i % 2 else part for i, part in enumerate(_date_parts(fmt)))


def _dated(text: str, day: date) -> str:
    """The text with each marked date written for the day."""
    return _MARKED.sub(lambda found: _format_date(day, found.group(1)), text)


def _date_go(fmt: str) -> str:
    return "".join(DATE_FIELDS[part[1:]][1] if i % 2 else _go_text(part) for i, part in enumerate(_date_parts(fmt)))


def _dated_go(text: str) -> str:
    """Go template writing the text, each marked date for the day Ollama renders on (its currentDate)."""
    parts = _MARKED.split(text)
    if len(parts) == 1:
        return _go_text(text)
    return "{{ $today := currentDate }}" + "".join(_date_go(p) if i % 2 else _go_text(p) for i, p in enumerate(parts))


# ---- the families ----------------------------------------------------------------------------------------------

def _today(t: dict) -> date:
    """The day a rendering's dates are written for: ``today`` in the tokens, or else the clock's."""
    return t.get("today") or date.today()


def _chatml(messages: list[dict], t: dict) -> str:
    text = ""
    if t.get("default_system") and messages[0]["role"] != "system":
        text += f"<|im_start|>system\n{_dated(t['default_system'], _today(t))}<|im_end|>\n"
    for m in messages:
        text += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def _chatml_go(t: dict) -> str:
    default = ""
    if t.get("default_system"):
        default = ('{{- if ne (index .Messages 0).Role "system" }}<|im_start|>system\n'
                   + _dated_go(t["default_system"]) + "<|im_end|>\n{{ end }}\n")
    return (default + "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
            "<|im_start|>assistant\n")


def _llama3(messages: list[dict], t: dict) -> str:
    text = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
                   for m in messages)
    return t["bos"] + text + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _llama3_go(t: dict) -> str:
    return (TRIMMED_GO + "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
            + _trimmed(".Content") + "<|eot_id|>{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n")


def _llama31(messages: list[dict], t: dict) -> str:
    """Llama 3.1 and 3.2: a system turn always, opening with the template's preamble (knowledge and a date, a fixed
    one or today's)."""
    system = messages[0]["content"].strip() if messages[0]["role"] == "system" else ""
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    preamble = _dated(t["preamble"], _today(t))
    return (t["bos"] + "<|start_header_id|>system<|end_header_id|>\n\n" + preamble + system + "<|eot_id|>"
            + _llama3(turns, {"bos": ""}))


def _llama31_go(t: dict) -> str:
    # Only a first system message is the system turn's; one further on is a turn of its own.
    return (TRIMMED_GO + "<|start_header_id|>system<|end_header_id|>\n\n" + _dated_go(t["preamble"])
            + '{{ if eq (index .Messages 0).Role "system" }}' + _trimmed("(index .Messages 0).Content")
            + '{{ end }}<|eot_id|>{{- range $i, $m := .Messages }}{{ if or $i (ne .Role "system") }}'
            "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n" + _trimmed(".Content") + "<|eot_id|>{{ end }}"
            "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")


def _zephyr(messages: list[dict], t: dict) -> str:
    """TinyLlama's chat models."""
    return "".join(f"<|{m['role']}|>\n{m['content']}{t['eos']}\n" for m in messages) + "<|assistant|>\n"


def _zephyr_go(t: dict) -> str:
    return "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}" + t["eos"] + "\n{{ end }}<|assistant|>\n"


def _llama2(messages: list[dict], t: dict) -> str:
    """The system prompt kept as it is, user and assistant texts trimmed."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    text = ""
    for i, m in enumerate(turns):
        if m["role"] == "user":
            content = m["content"].strip()
            if i == 0 and system:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
            text += f"{t['bos']}[INST] {content} [/INST]"
        else:
            text += f" {m['content'].strip()} {t['eos']}"
    return text


def _llama2_go(t: dict) -> str:
    # Every user turn starts with the beginning-of-sequence token, as text; the first one only where the runtime
    # does not add it (a system prompt alone gives no turn, so no token).
    return (TRIMMED_GO + "{{- $first := true }}{{- $system := \"\" }}{{- range .Messages }}"
            "{{- if eq .Role \"system\" }}{{ $system = .Content }}"
            "{{- else if eq .Role \"user\" }}{{ if $first }}" + t["first_bos"] + "{{ else }}" + t["bos"]
            + "{{ end }}[INST] "
            "{{ if $system }}<<SYS>>\n{{ $system }}\n<</SYS>>\n\n{{ $system = \"\" }}{{ end }}"
            + _trimmed(".Content") + " [/INST]{{ $first = false }}"
            "{{- else if eq .Role \"assistant\" }} " + _trimmed(".Content") + " " + t["eos"] + "{{- end }}{{- end }}")


def _llamadesk(messages: list[dict], t: dict) -> str:
    heads = {"system": "### System:\n", "user": "### User:\n", "tool": "### Tool result:\n"}
    text = t["bos"]
    for m in messages:
        if m["role"] == "assistant":
            text += f"### Assistant:\n{m['content']}{t['eos']}\n\n"
        else:
            text += f"{heads[m['role']]}{m['content']}\n\n"
    return text + "### Assistant:\n"


def _llamadesk_go(t: dict) -> str:
    return ("{{- range .Messages }}{{ if eq .Role \"system\" }}### System:\n{{ .Content }}\n\n"
            "{{ else if eq .Role \"user\" }}### User:\n{{ .Content }}\n\n"
            "{{ else if eq .Role \"tool\" }}### Tool result:\n{{ .Content }}\n\n"
            "{{ else if eq .Role \"assistant\" }}### Assistant:\n{{ .Content }}" + t["eos"] + "\n\n"
            "{{ end }}{{ end }}### Assistant:\n")


FAMILIES = (
    Family("chatml", _chatml, _chatml_go, ("<|im_start|>",), opens_with_bos=False),
    Family("llama3", _llama3, _llama3_go, ("<|start_header_id|>",)),
    Family("llama3.1", _llama31, _llama31_go, ("<|start_header_id|>",)),
    Family("zephyr", _zephyr, _zephyr_go, ("<|user|>",), opens_with_bos=False),
    Family("llama2", _llama2, _llama2_go, ("[INST]",), opens_with_bos=False),
    Family("llamadesk", _llamadesk, _llamadesk_go, ("### User:",)),
)


def _jinja(tokenizer, messages: list[dict]) -> str:
    """The model's prompt, with each date its template writes today marked (DATE_MARK) instead."""
    template = _MARKED_DATES + tokenizer.get_chat_template()
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)


def tokens_of(tokenizer) -> dict:
    """What the families' rules need from the tokenizer: its special-token texts, any default system prompt, and
    Llama 3.1's preamble; a date the template writes today is marked in them."""
    found = {"bos": tokenizer.bos_token or "", "eos": tokenizer.eos_token or "", "default_system": "", "preamble": ""}
    rendered = _jinja(tokenizer, PROBES[0])
    head = "<|im_start|>system\n"
    if rendered.startswith(head) and "<|im_end|>" in rendered:
        found["default_system"] = rendered[len(head):rendered.index("<|im_end|>")]
    head = found["bos"] + "<|start_header_id|>system<|end_header_id|>\n\n"
    if rendered.startswith(head) and "<|eot_id|>" in rendered:  # Llama 3.1's system turn when no system is given
        found["preamble"] = rendered[len(head):rendered.index("<|eot_id|>")]
    return found


def family_of(tokenizer) -> Family:
    """The family whose rules give exactly what the model's template gives for every probe conversation."""
    try:
        tokens = {**tokens_of(tokenizer), "today": PROBE_DAY}
        wanted = [_dated(_jinja(tokenizer, p), PROBE_DAY) for p in PROBES]
    except TemplateUnsupported:
        raise
    except Exception:  # noqa: BLE001 - a template that refuses a plain conversation fits no family
        wanted = None
    for family in FAMILIES if wanted else ():
        if all(family.render(p, tokens) == w for p, w in zip(PROBES, wanted)):
            return family
    raise TemplateUnsupported("this model's chat template is not one LlamaDesk can write for Ollama",
                              hint="export GGUF instead (it carries the template for llama.cpp and LM Studio) and "
                              "write the Modelfile's TEMPLATE yourself")


# ---- the Modelfile ---------------------------------------------------------------------------------------------

def modelfile(tokenizer, gguf_name: str, *, context: int, system: str = "") -> tuple[str, dict]:
    """The Modelfile's text and what it was made from (family, template, stops) for the verification report."""
    check_system(system)
    family = family_of(tokenizer)
    tokens = tokens_of(tokenizer)
    tokens["first_bos"] = "" if adds_bos(tokenizer) else tokens["bos"]  # the one the runtime does not add
    template = family.go(tokens)
    if family.opens_with_bos:
        template = tokens["first_bos"] + template
    _check_value(template, "chat template written for Ollama", TemplateUnsupported)
    stops = list(dict.fromkeys([*end_of_turn_tokens(tokenizer), *family.stops]))
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if "currentDate" in template:  # an older Ollama refuses the template ("function currentDate not defined")
        lines.insert(0, f"# The TEMPLATE writes today's date with currentDate: Ollama {CURRENT_DATE_SINCE} or later.")
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {_parameter(stop)}" for stop in stops]
    lines.append(f"PARAMETER num_ctx {context}")
    return "\n".join(lines) + "\n", {"family": family.name, "template": template, "stops": stops}


def check_system(system: str) -> None:
    """Refuses a system prompt the Modelfile cannot hold, before anything is exported (ModelfileUnwritable)."""
    _check_value(system, "system prompt", ModelfileUnwritable)


def _check_value(text: str, what: str, error: type[UserError]) -> None:
    """Refuses text that Ollama's Modelfile parser (parser/parser.go) would not read back exactly from
    \"\"\"text\"\"\". The parser reads no escapes. It drops every character that is neither printable
    (strconv.IsPrint) nor a space, tab or line end, and it ends a triple-quoted value at the first line end where the
    text so far, less trailing whitespace, ends with three quotes; quotes anywhere else stay text. Other quotings fail
    on the same texts."""
    dropped = sorted({c for c in text if c not in " \t\r\n" and not _printable(c)})
    if dropped:
        names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '(a control character)')}" for c in dropped[:3])
        raise error(f"the {what} holds characters an Ollama Modelfile cannot keep: {names}",
                    hint=f"remove them from the {what} or put ordinary spaces in their place")
    early = re.search(r'"""[ \t\r\n]*[\r\n]', text)
    if early:
        line = text[:early.start()].count("\n") + 1
        raise error(f'line {line} of the {what} ends with three double quotes ("""), which end the text early in '
                    "an Ollama Modelfile", hint="put another character after those quotes (a period, say), or "
                    f"leave the {what} out of the export and give it to Ollama with each request")


def _parameter(value: str) -> str:
    """A PARAMETER value: in quotes, triple ones if it has quotes of its own (the parser reads no escapes)."""
    _check_value(value, "stop string", TemplateUnsupported)
    return f'"""{value}"""' if '"' in value else f'"{value}"'


def stops_in(text: str) -> list[str]:
    """The stop strings a Modelfile sets, read back from its PARAMETER lines as Ollama's parser reads them."""
    found = []
    for line in text.splitlines():
        if line.startswith("PARAMETER stop "):
            value = line[len("PARAMETER stop "):].strip()
            quote = next((q for q in ('"""', '"') if value.startswith(q) and value.endswith(q)), "")
            found.append(value[len(quote):len(value) - len(quote)])
    return found


def create_command(folder: Path, name: str) -> str:
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(str(folder / 'Modelfile'))}"
