"""Proving an export answers like the fine-tune, before it is reported as done.

The fine-tune itself (the base as trained, with the adapter) continues prompts taken from the run's own data, and
its next-token scores along that continuation are kept. Each export is then read back the way its users read it and
measured against them: the merged folder here, with ``from_pretrained``; a GGUF in llama.cpp itself
(in_llama_cpp.py). Measures: top-1 agreement and KL divergence along the reference continuation, the largest
difference of a score, and how many greedy tokens come out identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from engine.heavy import before_after
from engine.heavy.data import pipeline
from engine.light.config import RunConfig
from engine.light.errors import DatasetError

NEW_TOKENS = 32
CONVERSATION = [{"role": "system", "content": "You answer in one sentence."},
                {"role": "user", "content": "Who keeps the lighthouse?"},
                {"role": "assistant", "content": "The keeper of the north light."},
                {"role": "user", "content": "And how long has it stood?"}]
# What counts as answering like the fine-tune, judged where the fine-tune's choice is clear: its top token leads the
# runner-up by at least CLEAR_MARGIN in score. Storing merged weights in 16 bits moves scores by tenths, enough to flip
# a near-tie (and make greedy continuations part ways there) but not a clear choice; a broken conversion flips clear
# choices by the dozen. A 16-bit copy keeps nearly every clear choice with next-token distributions nearly identical
# (KL). Agreement on every position and the greedy continuations are reported beside it.
CLEAR_MARGIN = 1.0
MIN_CLEAR_POSITIONS = 32
# Per export: the share of clear positions with the same top token, and the largest mean KL divergence (nats per
# token). A GGUF is measured in llama.cpp (in_llama_cpp.py); the ceilings for its file types are set from
# bench/export_bench.py's measurements (README: Export).
REQUIRED = {"merged": {"clear_top1": 0.99, "kl": 0.01}, "f16": {"clear_top1": 0.97, "kl": 0.01},
            "q8_0": {"clear_top1": 0.95, "kl": 0.05}, "q4_k_m": {"clear_top1": 0.85, "kl": 0.3}}


@dataclass
class Reference:
    """The fine-tune's greedy continuation of each prompt and its scores along it."""

    prompts: list[list[int]]
    continuations: list[list[int]] = field(default_factory=list)
    scores: list[torch.Tensor] = field(default_factory=list)
    source: str = ""  # where the prompts came from


def prompts_from_run(config: RunConfig, tokenizer, count: int = 8) -> tuple[list[list[int]], str]:
    """The prompt part of the run's first ``count`` examples (before_after.first_turn: the tokens before the first
    trained one): validation examples first, topped up with training ones (a small run holds out few); fixed
    questions when the dataset is gone."""
    try:
        train, validation = pipeline.prepare(config.dataset, tokenizer, config.data, preview_rows=0).splits()
    except (DatasetError, OSError):
        return [_fixed(tokenizer)], "a fixed conversation (the run's dataset is no longer readable)"
    found, taken = [], {}
    for name, rows in (("validation", validation), ("training", train)):
        for row in rows.select(range(min(len(rows), count * 4))) if rows is not None else ():
            if len(found) == count:
                break
            turn = before_after.first_turn(row)
            if turn is not None:
                found.append(turn[0])
                taken[name] = taken.get(name, 0) + 1
    if not found:
        return [_fixed(tokenizer)], "a fixed conversation (no example of the run's dataset has a prompt)"
    return found, "the first " + " and ".join(f"{n} {name}" for name, n in taken.items()) + " examples of the run's dataset"


def _fixed(tokenizer) -> list[int]:
    rendered = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=True)
    return list(rendered["input_ids"] if isinstance(rendered, dict) or hasattr(rendered, "keys") else rendered)


@torch.no_grad()
def reference(model, prompts: list[list[int]], source: str) -> Reference:
    found = Reference(prompts, continuations=_greedy(model, prompts), source=source)
    found.scores = [_scores(model, p, c) for p, c in zip(prompts, found.continuations)]
    return found


def _greedy(model, prompts: list[list[int]]) -> list[list[int]]:
    """Every prompt's greedy continuation, in one left-padded batch."""
    longest = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (longest - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    out = model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                         do_sample=False, pad_token_id=0)
    return out[:, longest:].tolist()


def _scores(model, prompt: list[int], continuation: list[int]) -> torch.Tensor:
    """The next-token scores at each continuation position (float32, on the CPU)."""
    ids = torch.tensor([prompt + continuation], device=model.device)
    logits = model(input_ids=ids).logits[0]
    return logits[len(prompt) - 1: len(prompt) - 1 + len(continuation)].float().cpu()


@torch.no_grad()
def against(model, ref: Reference) -> dict:
    """How closely ``model`` follows the reference: per-prompt greedy agreement, top-1, KL, largest score gap."""
    agree, positions, kl_sum, gap, greedy, clear, clear_agree = 0, 0, 0.0, 0.0, [], 0, 0
    for prompt, continuation, expected, mine in zip(ref.prompts, ref.continuations, ref.scores,
                                                    _greedy(model, ref.prompts)):
        got = _scores(model, prompt, continuation)
        # The continuation itself was generated with the end-of-turn tokens held back (every prompt runs for the
        # full count), so the next-token choice is compared on the scores, where they are not.
        same = got.argmax(-1) == expected.argmax(-1)
        agree += int(same.sum())
        top = expected.topk(2, dim=-1).values
        decided = (top[:, 0] - top[:, 1]) >= CLEAR_MARGIN
        clear += int(decided.sum())
        clear_agree += int((same & decided).sum())
        positions += len(continuation)
        kl_sum += float(F.kl_div(F.log_softmax(got.double(), -1), F.log_softmax(expected.double(), -1),
                                 log_target=True, reduction="sum"))
        gap = max(gap, float((got - expected).abs().max()))
        greedy.append(next((i for i, (a, b) in enumerate(zip(mine, continuation)) if a != b), len(continuation)))
    return {"prompts": len(ref.prompts), "prompt_source": ref.source, "greedy_identical_tokens": greedy,
            "top1_agreement": round(agree / max(positions, 1), 4),
            "clear_top1_agreement": round(clear_agree / clear, 4) if clear else None, "clear_positions": clear,
            "positions": positions,
            "kl_divergence": round(kl_sum / max(positions, 1), 6), "largest_score_difference": round(gap, 4)}


def judge(measure: dict, kind: str) -> bool:
    """Whether ``measure`` meets what ``kind`` requires; both are recorded in it for the report. Too few clear
    positions to judge is "not verified", never passed."""
    need = REQUIRED[kind]
    measure["required"] = {"clear_top1_agreement": need["clear_top1"], "kl_divergence": need["kl"],
                           "clear_positions": MIN_CLEAR_POSITIONS}
    if measure["clear_positions"] < MIN_CLEAR_POSITIONS:
        measure["verdict"] = (f"not verified: the fine-tune was sure of its next token at only "
                              f"{measure['clear_positions']} positions, fewer than the {MIN_CLEAR_POSITIONS} a "
                              "verdict needs")
        measure["passed"] = False
        return False
    measure["passed"] = (measure["clear_top1_agreement"] >= need["clear_top1"]
                         and measure["kl_divergence"] <= need["kl"])
    measure["verdict"] = "passed" if measure["passed"] else "failed"
    return measure["passed"]


def load_merged(folder: Path, device: str):
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map={"": 0 if device == "cuda" else "cpu"})
