"""Rendering conversations with the model's chat template, and finding the character spans the model learns from.

The trained spans are found by rendering each conversation prefix: the text an assistant turn adds after the
generation prompt is exactly what the model will be asked to produce (its reply plus the end-of-turn marker). This
works with any template, including ones without ``{% generation %}`` markers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import resources
from engine.heavy.data import tool_calls
from engine.heavy.data.formats import Example
from engine.heavy.data.problems import ERROR, Problem, Report

DEFAULT_TEMPLATE_FILE = "default_chat_template.jinja"


@dataclass
class Rendered:
    row: int
    text: str
    spans: list[tuple[int, int]]  # [start, end) character ranges that carry labels
    prompt: list[dict] | None = None  # the messages before the first trained reply (see prompt_messages)


def default_template() -> str:
    return resources.path(DEFAULT_TEMPLATE_FILE).read_text(encoding="utf-8")


def ensure_chat_template(tokenizer) -> str:
    """Give a tokenizer without a chat template LlamaDesk's documented default; return which one is in use."""
    if getattr(tokenizer, "chat_template", None):
        return "model"
    tokenizer.chat_template = default_template()
    return "default"


def render_all(examples: list[Example], tokenizer, report: Report, *, train_on: str = "assistant") -> list[Rendered]:
    out = []
    for example in examples:
        try:
            rendered = render(example, tokenizer, train_on=train_on)
        except Exception as exc:  # a template raising on unusual roles is a property of this row, not a crash
            report.add(Problem(example.row, "", "template_error",
                               f"the model's chat template rejected this conversation: {exc}", ERROR))
            continue
        out.append(rendered)
    return out


def render(example: Example, tokenizer, *, train_on: str = "assistant") -> Rendered:
    if example.text is not None:
        text = example.text + (tokenizer.eos_token or "")
        return Rendered(example.row, text, [(0, len(text))])
    messages, tools = for_template(example.messages, example.tools, tokenizer)
    full = _apply(tokenizer, messages, tools, generation_prompt=False)
    if train_on == "all":
        return Rendered(example.row, full, [(0, len(full))])
    spans, prompt = [], None
    added = len(messages) - len(example.messages)  # a system message listing the tools may lead the conversation
    for i, message in enumerate(example.messages):
        if message["role"] == "assistant" and message["train"]:
            if not spans:
                prompt = prompt_messages(messages[: i + added])
            spans.append(_assistant_span(tokenizer, messages, i + added, tools, full, spans))
    return Rendered(example.row, full, spans, prompt)


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The conversation before a reply as plain role and content messages, so that an OpenAI-compatible API can answer
    the prompt the local model saw: the system prompt (holding the tool list when the template has no place for one),
    the earlier turns, and the user turn answered; an assistant's calls written as text, as the fallback writes them."""
    plain = []
    for m in messages:
        content = m.get("content") or ""
        if m.get("tool_calls"):
            content = "\n".join(filter(None, [content, tool_calls.as_text(m["tool_calls"])]))
        plain.append({"role": m["role"], "content": content})
    return plain


def for_template(messages: list[dict], tools: list | None, tokenizer) -> tuple[list[dict], list | None]:
    """The conversation as the chat template takes it. Calls go as ``tool_calls`` when the template renders them
    (Llama 3.1 and later, Qwen, Mistral's); otherwise as text in the assistant turn, ``<tool_call>{"name": …,
    "arguments": …}</tool_call>``, with the tool definitions given in the system message if the template does not
    render those either. Tool results are ``tool`` turns, left untrained."""
    support = tool_support(tokenizer)
    shaped = []
    for m in messages:
        message = {"role": m["role"], "content": m["content"]}
        if m.get("tool_calls"):
            if support.calls:
                message["tool_calls"] = m["tool_calls"]
            else:
                message["content"] = "\n".join(filter(None, [m["content"], tool_calls.as_text(m["tool_calls"])]))
        if m.get("tool_call_id"):
            message["tool_call_id"] = m["tool_call_id"]
        shaped.append(message)
    if tools and not support.definitions:
        listed = ("You can call these functions; write each call as " + tool_calls.FALLBACK_OPEN + '{"name": …, '
                  '"arguments": {…}}' + tool_calls.FALLBACK_CLOSE + ".\n<tools>\n"
                  + json.dumps(tools, ensure_ascii=False) + "\n</tools>")
        if shaped and shaped[0]["role"] == "system":
            shaped[0] = {**shaped[0], "content": shaped[0]["content"] + "\n\n" + listed}
        else:
            shaped.insert(0, {"role": "system", "content": listed})
        tools = None
    return shaped, tools


@dataclass(frozen=True)
class ToolSupport:
    calls: bool  # the template renders an assistant's tool_calls
    definitions: bool  # the template renders the tools it is given


def tool_support(tokenizer) -> ToolSupport:
    """What the tokenizer's chat template does with calls and tool definitions, found by rendering a probe."""
    template = tokenizer.chat_template or ""
    if template not in _SUPPORT:
        call = {"type": "function", "function": {"name": "probe_call_q7", "arguments": {"x": 1}}}
        probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
        definition = {"type": "function", "function": {"name": "probe_tool_k3", "description": "d",
                                                       "parameters": {"type": "object", "properties": {}}}}
        try:
            rendered = tokenizer.apply_chat_template(probe, tools=[definition], tokenize=False)
        except Exception:  # a template that rejects calls altogether renders them as text
            rendered = ""
        _SUPPORT[template] = ToolSupport("probe_call_q7" in rendered, "probe_tool_k3" in rendered)
    return _SUPPORT[template]


_SUPPORT: dict[str, ToolSupport] = {}


def _assistant_span(tokenizer, messages, index, tools, full, earlier) -> tuple[int, int]:
    prompt = _apply(tokenizer, messages[:index], tools, generation_prompt=True)
    upto = _apply(tokenizer, messages[: index + 1], tools, generation_prompt=False)
    if full.startswith(upto) and upto.startswith(prompt) and len(upto) > len(prompt):
        return len(prompt), _trim(upto, len(prompt), len(upto))
    # The template renders earlier turns differently once later turns exist: fall back to finding the reply text
    # after the previous span, and include the end-of-turn token when it follows directly.
    content = messages[index]["content"]
    start = full.find(content, earlier[-1][1] if earlier else 0)
    if start < 0:
        raise ValueError("could not locate the assistant reply in the rendered text")
    end = start + len(content)
    eos = tokenizer.eos_token or ""
    if eos and full.startswith(eos, end):
        end += len(eos)
    return start, end


def _trim(text: str, start: int, end: int) -> int:
    """Leave out the line break a template puts after the end-of-turn token: the model never has to produce it."""
    while end > start + 1 and text[end - 1] in "\n\r ":
        end -= 1
    return end


def _apply(tokenizer, messages, tools, *, generation_prompt: bool) -> str:
    if not messages:
        # An empty prefix renders as whatever the template emits before the first turn (e.g. a BOS token).
        return ""
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
    )
