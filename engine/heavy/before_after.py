"""Did the fine-tune help? The base model and the fine-tuned one measured on the run's validation split.

One loaded PEFT model answers as both: PEFT's ``disable_adapter`` switches the LoRA layers off for the base. For each
side: the validation loss and perplexity over every trained token, and greedy answers to the first validation
prompts, each scored against the reference reply with ROUGE-L (engine/light/rouge.py). The prompts and references
are read back from the tokenized split itself (the tokens before an example's first trained token, and that trained
span), so they are exactly what the model was validated on, for runs made before this feature too. Each answer also
keeps the conversation its prompt was rendered from and the cap on its length, so that an API model can later be
asked the same (engine/light/api_compare.py).

The comparison reports its progress (``protocol.CompareProgress``) after each loss pass and each prompt, with the time
left measured from the prompts already answered, and checks between them whether it should end early (skipped).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from typing import Callable

import torch

from engine.heavy.data.tokenize import IGNORE, PROMPTS
from engine.heavy.generation import stop_ids
from engine.light import protocol
from engine.light.rouge import rouge_l

MAX_NEW_TOKENS = 256


class Skipped(Exception):
    """The comparison was asked to end before it was complete; nothing of it is kept."""


def evaluate(model, tokenizer, validation, *, prompts: int,
             progress: Callable[[protocol.CompareProgress], None] = lambda _: None,
             skip: Callable[[], bool] = lambda: False) -> dict:
    """The comparison as a plain dict (saved as the run folder's evaluation.json). ``validation`` is the tokenized
    split (rows of input_ids, labels, position_ids); ``model`` a PeftModel. ``skip`` is asked before each loss pass
    and each prompt; when it says so, ``Skipped`` is raised."""
    began = time.monotonic()
    rows = [dict(row) for row in validation]
    model.eval()
    result = {"validation_rows": len(rows), "before": {}, "after": {}, "answers": []}
    for done, (side, adapter) in enumerate((("before", False), ("after", True))):
        _check(skip)
        progress(protocol.CompareProgress("loss", done, 2, elapsed_s=time.monotonic() - began))
        with adapter_on(model, adapter):
            total, count = _loss_sum(model, rows)
        loss = total / count if count else None
        result[side] = {"loss": loss, "perplexity": math.exp(loss) if loss is not None and loss < 50 else None,
                        "tokens": count}
    turns = [(row, turn) for row, turn in ((row, first_turn(row)) for row in rows) if turn is not None][:prompts]
    end_ids = sorted(stop_ids(model, tokenizer))
    answers_began = time.monotonic()
    for index, (row, (prompt_ids, reference_ids)) in enumerate(turns):
        _check(skip)
        now = time.monotonic()
        # The time left from the prompts answered so far: each prompt asks both models the same, so they take alike.
        eta = (now - answers_began) / index * (len(turns) - index) if index else None
        progress(protocol.CompareProgress("answers", index, len(turns), eta, now - began))
        reference = tokenizer.decode(reference_ids, skip_special_tokens=True).strip()
        cap = answer_cap(reference_ids)
        entry = {"prompt": tokenizer.decode(prompt_ids, skip_special_tokens=False),
                 "question": question_text(tokenizer, prompt_ids), "reference": reference, "max_new_tokens": cap}
        messages = prompt_messages(row)
        if messages:
            entry["messages"] = messages
        for side, adapter in (("before", False), ("after", True)):
            with adapter_on(model, adapter):
                answer = _greedy(model, tokenizer, prompt_ids, end_ids, cap)
            entry[side] = answer
            entry[f"rouge_l_{side}"] = rouge_l(reference, answer)
        result["answers"].append(entry)
    progress(protocol.CompareProgress("answers", len(turns), len(turns), 0.0, time.monotonic() - began))
    for side in ("before", "after"):
        scores = [a[f"rouge_l_{side}"] for a in result["answers"]]
        result[side]["rouge_l"] = sum(scores) / len(scores) if scores else None
    return result


def _check(skip: Callable[[], bool]) -> None:
    if skip():
        raise Skipped


def answer_cap(reference_ids: list[int]) -> int:
    """The most new tokens an answer may take: room for twice the reference, so a wordier right answer is not cut."""
    return min(MAX_NEW_TOKENS, 2 * len(reference_ids) + 16)


ROLE_WORDS = {"user", "human", "assistant", "system"}


def question_text(tokenizer, prompt_ids: list[int]) -> str:
    """The last user turn of a rendered prompt, for a reader: the text between the special tokens just before the
    assistant's header (chatml, Llama 3 and similar templates), without a leading role word; the whole prompt
    without special tokens when the template marks turns with plain text."""
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    pieces, current = [], []
    for token in prompt_ids:
        if token in special:
            pieces.append(current)
            current = []
        else:
            current.append(token)
    pieces.append(current)
    texts = [text for text in (tokenizer.decode(piece).strip() for piece in pieces) if text]
    if len(texts) < 2:
        return tokenizer.decode(prompt_ids, skip_special_tokens=True).strip()
    turn = texts[-2]
    first, _, rest = turn.partition("\n")
    return rest.strip() if first.strip().lower() in ROLE_WORDS and rest.strip() else turn


def adapter_on(model, on: bool):
    return nullcontext() if on or not hasattr(model, "disable_adapter") else model.disable_adapter()


@torch.no_grad()
def _loss_sum(model, rows: list[dict]) -> tuple[float, int]:
    """The summed token loss and the number of trained tokens, one row at a time (no padding to account for)."""
    total, count = 0.0, 0
    device = model.device
    for row in rows:
        ids = torch.tensor([row["input_ids"]], device=device)
        labels = torch.tensor([row["labels"]], device=device)
        positions = torch.tensor([row["position_ids"]], device=device) if "position_ids" in row else None
        trained = int((labels[:, 1:] != IGNORE).sum())
        if not trained:
            continue
        loss = model(input_ids=ids, labels=labels, position_ids=positions, use_cache=False).loss
        total += float(loss) * trained
        count += trained
    return total, count


def first_turn(row: dict) -> tuple[list[int], list[int]] | None:
    """The prompt (from the start of the example) and the reference (the first trained span) of a row's first
    example; packed rows hold several examples, each starting where the position ids restart at 0."""
    labels, ids = row["labels"], row["input_ids"]
    first = _first_trained(labels)
    if first is None or first == 0:
        return None
    positions = _positions(row)
    start = max(i for i in range(first + 1) if positions[i] == 0)
    end = first
    while end < len(labels) and labels[end] != IGNORE and (end == first or positions[end] != 0):
        end += 1
    return list(ids[start:first]), list(ids[first:end])


def prompt_messages(row: dict) -> list[dict] | None:
    """The chat messages ``first_turn``'s prompt was rendered from (the system prompt, the earlier turns, the user turn
    answered); None for a split tokenized before they were kept, or a prompt that was not a conversation."""
    stored = row.get(PROMPTS)
    first = _first_trained(row["labels"])
    if not stored or first is None:
        return None
    positions = _positions(row)
    example = sum(1 for i in range(first + 1) if positions[i] == 0) - 1  # the example holding the first trained token
    prompts = json.loads(stored)
    return prompts[example] if 0 <= example < len(prompts) else None


def _first_trained(labels: list[int]) -> int | None:
    return next((i for i, label in enumerate(labels) if label != IGNORE), None)


def _positions(row: dict) -> list[int]:
    return row.get("position_ids") or list(range(len(row["input_ids"])))


@torch.no_grad()
def _greedy(model, tokenizer, prompt_ids: list[int], end_ids: list[int], max_new_tokens: int) -> str:
    ids = torch.tensor([prompt_ids], device=model.device)
    output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                            do_sample=False, eos_token_id=end_ids,
                            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0])
    return tokenizer.decode(output[0, len(prompt_ids):], skip_special_tokens=True).strip()
