"""Function calling in a glaive-style ShareGPT file: the call becomes a real tool call in the chat template's own form
(or, for a template without tool support, the documented <tool_call> text), trained on; the observation is a tool
turn, never trained on. Exact rendered text and trained mask, for both kinds of template."""

from __future__ import annotations

import json

import pytest

from engine.heavy.data.pipeline import prepare
from engine.light.config import DataSettings

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
ROW = {"conversations": [
    {"from": "human", "value": "What's the weather in Oslo?"},
    {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})},
    {"from": "observation", "value": json.dumps({"temperature": 4, "sky": "rain"})},
    {"from": "gpt", "value": "It is 4 °C and raining in Oslo."}],
    "tools": json.dumps(TOOLS)}

# A template that renders calls and tool definitions itself, in the manner of Llama 3.1's (written for this test, on
# the demo tokenizer's own special tokens).
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "{\"name\": \"{{ c.function.name }}\", \"parameters\": {{ c.function.arguments | tojson }}}{% endfor %}"
    "{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _render(tmp_path, tokenizer):
    path = tmp_path / "glaive.jsonl"
    path.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    prepared = prepare(path, tokenizer, DataSettings(validation_share=0, cutoff=2048), preview_rows=1, use_cache=False)
    assert prepared.report.problems == [] and prepared.detection.format == "sharegpt"
    segments = prepared.preview[0].segments
    return "".join(text for text, _ in segments), [text for text, trained in segments if trained]


def test_a_template_with_tool_support_renders_the_call_as_a_tool_call(tmp_path, fresh_tokenizer):
    fresh_tokenizer.chat_template = TOOL_TEMPLATE
    text, trained = _render(tmp_path, fresh_tokenizer)
    assert text == (
        f"<|im_start|>system\nTools: {json.dumps(TOOLS)}<|im_end|>\n"
        "<|im_start|>user\nWhat's the weather in Oslo?<|im_end|>\n"
        '<|im_start|>assistant\n{"name": "get_weather", "parameters": {"city": "Oslo"}}<|im_end|>\n'
        '<|im_start|>tool\n{"temperature": 4, "sky": "rain"}<|im_end|>\n'
        "<|im_start|>assistant\nIt is 4 °C and raining in Oslo.<|im_end|>\n")
    assert trained == ['{"name": "get_weather", "parameters": {"city": "Oslo"}}<|im_end|>',
                       "It is 4 °C and raining in Oslo.<|im_end|>"]


def test_a_template_without_tool_support_gets_the_documented_tool_call_text(tmp_path, tokenizer):
    """SmolLM2's ChatML template renders neither calls nor tools: calls become <tool_call> text, tools the system."""
    text, trained = _render(tmp_path, tokenizer)
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert text == (
        "<|im_start|>system\nYou can call these functions; write each call as <tool_call>{\"name\": …, "
        f"\"arguments\": {{…}}}}</tool_call>.\n<tools>\n{json.dumps(TOOLS)}\n</tools><|im_end|>\n"
        "<|im_start|>user\nWhat's the weather in Oslo?<|im_end|>\n"
        f"<|im_start|>assistant\n{call}<|im_end|>\n"
        '<|im_start|>tool\n{"temperature": 4, "sky": "rain"}<|im_end|>\n'
        "<|im_start|>assistant\nIt is 4 °C and raining in Oslo.<|im_end|>\n")
    assert trained == [call + "<|im_end|>", "It is 4 °C and raining in Oslo.<|im_end|>"]


@pytest.mark.parametrize("value, message", [
    ("get_weather(Oslo)", "not JSON"),
    (json.dumps({"arguments": {"city": "Oslo"}}), "has no name"),
    (json.dumps({"name": "get_weather", "arguments": "city=Oslo"}), "arguments of get_weather are not JSON"),
])
def test_a_malformed_call_is_reported_with_its_row_and_field(tmp_path, tokenizer, value, message):
    row = json.loads(json.dumps(ROW))
    row["conversations"][1]["value"] = value
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    prepared = prepare(path, tokenizer, DataSettings(validation_share=0), preview_rows=0, use_cache=False)
    problem = prepared.report.problems[0]
    assert (problem.row, problem.field, problem.code) == (2, "conversations[2].value", "bad_tool_call")
    assert message in problem.message and prepared.report.rows_usable == 1


def test_openai_tool_calls_become_the_same_calls(tmp_path, tokenizer):
    row = {"messages": [
        {"role": "user", "content": "What's the weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": json.dumps({"city": "Oslo"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"temperature": 4, "sky": "rain"})},
        {"role": "assistant", "content": "It is 4 °C and raining in Oslo."}], "tools": TOOLS}
    path = tmp_path / "openai.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    prepared = prepare(path, tokenizer, DataSettings(validation_share=0, cutoff=2048), preview_rows=1,
                       use_cache=False)
    text = "".join(t for t, _ in prepared.preview[0].segments)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
