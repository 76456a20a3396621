"""The batch comparison with an API model: a finished run's validation prompts (those of its before/after comparison,
evaluation.json) sent to an OpenAI-compatible model, its answers scored with ROUGE-L against the same references and
added to the comparison beside the base model's and the fine-tune's. No torch: the window runs it on a thread.

Like for like: the API model gets the conversation each local answer was generated from (system prompt, earlier turns,
the user turn) and the same cap on new tokens, both kept in evaluation.json. A comparison saved before they were kept
gets the question alone and the caller's cap, and the result's ``note`` says so."""

from __future__ import annotations

import time

from engine.light import api_chat
from engine.light.api_chat import ApiError, Endpoint
from engine.light.errors import UserError
from engine.light.rouge import rouge_l
from engine.light.run_folder import RunFolder


class CompareError(UserError):
    kind = "evaluation"


def compare(folder: RunFolder, endpoint: Endpoint, *, max_tokens: int = 256, progress=lambda text: None,
            cancel: api_chat.Cancel | None = None) -> dict:
    """Ask the API model every compared prompt (greedy, as the local models answered them) and save its answers in
    evaluation.json. ``max_tokens`` caps only the answers of a comparison saved without its own caps. A failure or
    ``cancel`` part-way keeps the whole answers so far (not the one cut short) and ``stopped`` says what stopped it;
    one before the first answer raises instead, and nothing is written."""
    result = folder.evaluation()
    if not result or not result.get("answers"):
        raise CompareError("this run has no comparison with the base model to add the API model to",
                           where=str(folder.path), hint="run 'llamadesk-engine eval RUN' first (it needs the run's "
                           "validation split)")
    answers = result["answers"]
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "seconds": 0.0}
    priced, stopped = True, None
    for entry in answers:  # an earlier API model's answers are replaced
        for key in ("api", "rouge_l_api", "api_first_token_s"):
            entry.pop(key, None)
    started = time.monotonic()
    for index, entry in enumerate(answers, start=1):
        progress(f"{endpoint.model}: prompt {index} of {len(answers)}")
        try:
            reply = api_chat.chat(endpoint, _messages_of(entry), temperature=0.0,
                                  max_tokens=entry.get("max_new_tokens") or max_tokens, cancel=cancel)
            if reply.finish_reason == "cancelled":
                raise ApiError(f"cancelled at prompt {index} of {len(answers)}", kind="cancelled")
        except ApiError as exc:
            if index == 1:
                raise  # nothing to keep: the endpoint does not work, or the user stopped before its first answer
            stopped = _why(exc, endpoint, index, len(answers))
            break
        entry["api"] = reply.text.strip()
        entry["rouge_l_api"] = rouge_l(entry.get("reference", ""), entry["api"])
        entry["api_first_token_s"] = reply.first_token_s
        totals["prompt_tokens"] += reply.prompt_tokens or 0
        totals["completion_tokens"] += reply.completion_tokens or 0
        if reply.cost_usd is None:
            priced = False
        else:
            totals["cost_usd"] += reply.cost_usd
    answered = [a["rouge_l_api"] for a in answers if "rouge_l_api" in a]
    totals["seconds"] = round(time.monotonic() - started, 3)
    result["api"] = {"model": endpoint.model, "base_url": endpoint.base_url, "answered": len(answered),
                     "rouge_l": sum(answered) / len(answered) if answered else None, **totals,
                     "cost_usd": totals["cost_usd"] if priced else None, "stopped": stopped,
                     "note": _not_like_for_like(answers, max_tokens)}
    folder.write_evaluation(result)
    return result


def _messages_of(entry: dict) -> list[dict]:
    """The chat messages the local models' prompt was made of; for a comparison saved before they were kept, the
    question as a single user message."""
    if entry.get("messages"):
        return [{"role": m["role"], "content": m["content"]} for m in entry["messages"]]
    return [{"role": "user", "content": entry.get("question") or entry["prompt"]}]


def _not_like_for_like(answers: list[dict], max_tokens: int) -> str | None:
    """What the API model was asked differently from the local models, when the comparison predates the conversations
    and caps it now keeps; None when every prompt went as the local models saw it."""
    without_messages = sum(1 for entry in answers if not entry.get("messages"))
    without_cap = sum(1 for entry in answers if not entry.get("max_new_tokens"))
    if not without_messages and not without_cap:
        return None
    parts = []
    if without_messages:
        parts.append(f"{without_messages} of {len(answers)} prompts went as the question alone, without the system "
                     "prompt or earlier turns the local models saw")
    if without_cap:
        parts.append(f"{without_cap} of {len(answers)} answers were capped at {max_tokens} tokens, not at the local "
                     "models' cap")
    return ("; ".join(parts) + " (a comparison saved by an earlier LlamaDesk keeps neither: run 'llamadesk-engine "
            "eval RUN' again to compare like for like)")


def _why(exc: ApiError, endpoint: Endpoint, index: int, count: int) -> str:
    """What stopped the comparison, for evaluation.json and the window."""
    if exc.kind == "dropped":  # the chat's wording keeps a partial reply; here the cut answer is left out
        return (f"the connection to {endpoint.host} closed mid-reply at prompt {index} of {count}; the answers before "
                "it are kept")
    return exc.message + (f" — {exc.hint}" if exc.hint else "")
