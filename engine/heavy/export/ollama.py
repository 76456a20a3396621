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
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Family:
    name: str
    render: Callable[[list[dict], dict], str]  # the family's rules, in Python: (messages, tokens) → prompt text
    go: Callable[[dict], str]  # the Go template, for the tokens and default system prompt found
    stops: tuple[str, ...]  # role markers that also end a reply
    opens_with_bos: bool = True  # the Jinja template starts with the beginning-of-sequence token


def _go_text(text: str) -> str:
    """Literal text inside a Go template, as a quoted string action: braces and quotes in it stay text."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def _chatml(messages: list[dict], t: dict) -> str:
    text = ""
    if t.get("default_system") and messages[0]["role"] != "system":
        text += f"<|im_start|>system\n{t['default_system']}<|im_end|>\n"
    for m in messages:
        text += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def _chatml_go(t: dict) -> str:
    default = ""
    if t.get("default_system"):
        default = ('{{- if ne (index .Messages 0).Role "system" }}<|im_start|>system\n'
                   + _go_text(t["default_system"]) + "<|im_end|>\n{{ end }}\n")
    return (default + "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
            "<|im_start|>assistant\n")


def _llama3(messages: list[dict], t: dict) -> str:
    text = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
                   for m in messages)
    return t["bos"] + text + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _llama3_go(t: dict) -> str:
    return ("{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
            "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n")


def _llama31(messages: list[dict], t: dict) -> str:
    """Llama 3.1 and 3.2: a system turn always, opening with the template's preamble (knowledge and today's date)."""
    system = messages[0]["content"].strip() if messages[0]["role"] == "system" else ""
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    return (t["bos"] + "<|start_header_id|>system<|end_header_id|>\n\n" + t["preamble"] + system + "<|eot_id|>"
            + _llama3(turns, {"bos": ""}))


def _llama31_go(t: dict) -> str:
    return ("<|start_header_id|>system<|end_header_id|>\n\n" + _go_text(t["preamble"])
            + '{{ if eq (index .Messages 0).Role "system" }}{{ (index .Messages 0).Content }}{{ end }}<|eot_id|>'
            '{{- range .Messages }}{{ if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
            "{{ .Content }}<|eot_id|>{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")


def _zephyr(messages: list[dict], t: dict) -> str:
    """TinyLlama's chat models."""
    return "".join(f"<|{m['role']}|>\n{m['content']}{t['eos']}\n" for m in messages) + "<|assistant|>\n"


def _zephyr_go(t: dict) -> str:
    return "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}" + t["eos"] + "\n{{ end }}<|assistant|>\n"


def _llama2(messages: list[dict], t: dict) -> str:
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    turns = messages[1:] if system else messages
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
    # A user turn after the first starts with the beginning-of-sequence token as text, as the Jinja template does.
    return ("{{- $first := true }}{{- $system := \"\" }}{{- range .Messages }}"
            "{{- if eq .Role \"system\" }}{{ $system = .Content }}"
            "{{- else if eq .Role \"user\" }}{{ if not $first }}" + t["bos"] + "{{ end }}[INST] "
            "{{ if $system }}<<SYS>>\n{{ $system }}\n<</SYS>>\n\n{{ $system = \"\" }}{{ end }}{{ .Content }} [/INST]"
            "{{ $first = false }}"
            "{{- else if eq .Role \"assistant\" }} {{ .Content }} " + t["eos"] + "{{- end }}{{- end }}")


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
    Family("llama2", _llama2, _llama2_go, ("[INST]",)),
    Family("llamadesk", _llamadesk, _llamadesk_go, ("### User:",)),
)


def _jinja(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def tokens_of(tokenizer) -> dict:
    """What the families' rules need from the tokenizer: its special-token texts and any default system prompt."""
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
        tokens, wanted = tokens_of(tokenizer), [_jinja(tokenizer, p) for p in PROBES]
    except Exception:  # noqa: BLE001 - a template that refuses a plain conversation fits no family
        wanted = None
    for family in FAMILIES if wanted else ():
        if all(family.render(p, tokens) == w for p, w in zip(PROBES, wanted)):
            return family
    raise TemplateUnsupported("this model's chat template is not one LlamaDesk can write for Ollama",
                              hint="export GGUF instead (it carries the template for llama.cpp and LM Studio) and "
                              "write the Modelfile's TEMPLATE yourself")


def modelfile(tokenizer, gguf_name: str, *, context: int, system: str = "") -> tuple[str, dict]:
    """The Modelfile's text and what it was made from (family, template, stops) for the verification report."""
    family = family_of(tokenizer)
    tokens = tokens_of(tokenizer)
    template = family.go(tokens)
    if family.opens_with_bos and not adds_bos(tokenizer):
        template = tokens["bos"] + template
    if '"""' in template:
        raise TemplateUnsupported("the chat template contains three quotes in a row, which a Modelfile cannot hold")
    stops = list(dict.fromkeys([*end_of_turn_tokens(tokenizer), *family.stops]))
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {_quote(stop)}" for stop in stops]
    lines.append(f"PARAMETER num_ctx {context}")
    return "\n".join(lines) + "\n", {"family": family.name, "template": template, "stops": stops}


def stops_in(text: str) -> list[str]:
    """The stop strings a Modelfile sets, read back from its PARAMETER lines."""
    found = []
    for line in text.splitlines():
        if line.startswith("PARAMETER stop "):
            value = line[len("PARAMETER stop "):].strip()
            found.append(value[1:-1].replace('\\"', '"').replace("\\\\", "\\") if value.startswith('"') else value)
    return found


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def create_command(folder: Path, name: str) -> str:
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(str(folder / 'Modelfile'))}"
