"""Function calling in datasets: the calls an assistant turn makes, in one shape, whatever the file's format.

ShareGPT files (glaive-style, LLaMA-Factory) keep a call as a ``function_call`` turn whose value is JSON
(``{"name": …, "arguments": {…}}``, or a list of them) and its result as an ``observation`` turn; OpenAI files put
``tool_calls`` (arguments as a JSON string) on the assistant message and the result in a ``tool`` message. Both become
an assistant message with ``tool_calls`` in the form Hugging Face chat templates take —
``[{"type": "function", "function": {"name": …, "arguments": {…}}}]`` — and a ``tool`` message, which is never
trained on. Rendering is then the template's own (templates/render); templates without tool support get the
documented fallback in engine/heavy/data/templates.py.
"""

from __future__ import annotations

import json
from typing import Any

FALLBACK_OPEN, FALLBACK_CLOSE = "<tool_call>", "</tool_call>"


class CallError(ValueError):
    """What is wrong with a call, for the row's problem report."""


def parse(value: Any) -> list[dict]:
    """Calls from a ShareGPT ``function_call`` value or an OpenAI ``tool_calls`` list, in the template form."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise CallError('the function call is not JSON; write {"name": "…", "arguments": {…}}') from None
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise CallError("the list of function calls is empty")
    return [_one(call) for call in calls]


def _one(call: Any) -> dict:
    if not isinstance(call, dict):
        raise CallError(f"a function call must be an object with name and arguments, not {type(call).__name__}")
    function = call.get("function", call)  # OpenAI nests the call under "function"
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise CallError("a function call has no name")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI keeps the arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            raise CallError(f"the arguments of {name} are not JSON") from None
    if not isinstance(arguments, dict):
        raise CallError(f"the arguments of {name} must be an object of named values")
    made = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(call.get("id"), str):
        made["id"] = call["id"]
    return made


def as_text(calls: list[dict]) -> str:
    """The fallback for templates that cannot render calls: each call as JSON between <tool_call> tags, the form
    many runtimes and tool-calling fine-tunes use."""
    shown = [json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}, ensure_ascii=False)
             for c in calls]
    return "\n".join(f"{FALLBACK_OPEN}\n{call}\n{FALLBACK_CLOSE}" for call in shown)
