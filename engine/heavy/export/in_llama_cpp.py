"""A GGUF export checked in llama.cpp itself, against the fine-tune it came from.

What only the runtime reads is checked where it is read:

- **the template**: the chat template stored in the file, rendered by llama.cpp for a multi-turn conversation with a
  system prompt, is the prompt the fine-tune's own template gives;
- **the prompt's tokens**: that prompt tokenized as a chat sends it (special tokens parsed, the beginning-of-sequence
  token added when the file says so) gives the fine-tune's ids: one beginning-of-sequence token, not two or none;
- **the pre-tokenizer**: a check text full of digits, contractions, whitespace, scripts and emoji gives the same ids;
- **the special tokens**: the ids the file marks as beginning, end of sequence and end of turn are the fine-tune's,
  and llama.cpp ends a reply at the end-of-turn token (it is forced with a logit bias, and the reply must stop there);
- **the answers**: along the fine-tune's own greedy continuations of the run's prompts, llama.cpp's next-token
  probabilities against the fine-tune's: the same top token where the fine-tune's choice is clear, and the KL
  divergence (on the tokens llama.cpp ranks, the rest taken together).

verify.judge holds what each file type must reach; too few clear positions is "not verified", never passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from engine.heavy import end_of_turn
from engine.heavy.export import gguf_metadata, pre_tokenizer
from engine.heavy.export.verify import CLEAR_MARGIN, CONVERSATION, Reference
from engine.heavy.llama_cpp import LlamaCpp, coarse_kl

TOP = 20  # tokens llama.cpp ranks at each position
SPECIAL_NAMES = {"bos": "beginning of sequence", "eos": "end of sequence", "end_of_turn": "end of turn"}


def tokenizer_checks(llama: LlamaCpp, gguf: Path, tokenizer) -> dict:
    metadata = gguf_metadata.read(gguf)
    stored = metadata.get("tokenizer.chat_template")
    # llama.cpp gives Llama 3.x templates today's date (as Llama 3.2's own template does); compared on the same day
    today = {"date_string": time.strftime("%d %b %Y")} if "date_string" in (tokenizer.chat_template or "") else {}
    expected_text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True, **today)
    expected_ids = tokenizer(expected_text, add_special_tokens=False).input_ids
    rendered = llama.apply_template(CONVERSATION)
    chat_ids = llama.tokenize(rendered, add_special=True)
    bos = tokenizer.bos_token_id
    marked = {"bos": metadata.get("tokenizer.ggml.bos_token_id"), "eos": metadata.get("tokenizer.ggml.eos_token_id"),
              "end_of_turn": metadata.get("tokenizer.ggml.eot_token_id")}
    wanted = {"bos": bos, "eos": tokenizer.eos_token_id, "end_of_turn": end_of_turn.turn_end_id(tokenizer)}
    return {
        "template_stored_identical": stored == tokenizer.chat_template,
        # llama.cpp leaves out the beginning-of-sequence text when it adds the token itself
        "template_renders_identical": rendered in (expected_text, _without(expected_text, tokenizer.bos_token)),
        "prompt_ids_identical": chat_ids == expected_ids,
        "beginning_tokens": sum(1 for _ in _leading(chat_ids, bos)) if bos is not None else 0,
        **_check_text(llama, tokenizer, metadata.get("tokenizer.ggml.pre", "")),
        "special_ids": {"marked": marked, "expected": wanted},
        "special_ids_identical": marked == wanted,
        "stops_at_end_of_turn": _stops_at(llama, expected_ids, wanted["end_of_turn"]),
    }


def _check_text(llama: LlamaCpp, tokenizer, pre: str) -> dict:
    """The check text's ids in llama.cpp against the tokenizer's, line by line and whole; the lines where llama.cpp
    is known to part from transformers under these rules (pre_tokenizer.RUNTIME_DIFFERENCES) are reported apart."""
    known = pre_tokenizer.RUNTIME_DIFFERENCES.get(pre, set())
    differing = [line for line in pre_tokenizer.CHECK_LINES if line.strip() and
                 llama.tokenize(line, add_special=False) != tokenizer(line, add_special_tokens=False).input_ids]
    rest = "\n".join(line for line in pre_tokenizer.CHECK_LINES if line not in known)
    whole = llama.tokenize(rest, add_special=False) == tokenizer(rest, add_special_tokens=False).input_ids
    return {"check_text_ids_identical": whole and set(differing) <= known,
            "check_text_known_runtime_differences": [line for line in differing if line in known]}


def _without(text: str, prefix: str | None) -> str:
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def _leading(ids: list[int], token: int):
    for i in ids:
        if i != token:
            return
        yield i


def _stops_at(llama: LlamaCpp, prompt: list[int], token: int | None) -> bool:
    """Whether llama.cpp ends the reply when the model writes ``token`` (made certain with a logit bias)."""
    if token is None:
        return False
    found = llama.greedy(prompt, 4, stop_at_end=True, logit_bias={token: 100.0})
    return found["finish_reason"] == "stop" and len(found["ids"]) <= 1


def tokenizer_checks_passed(found: dict) -> bool:
    return all(found[key] for key in ("template_stored_identical", "template_renders_identical",
                                      "prompt_ids_identical", "check_text_ids_identical", "special_ids_identical",
                                      "stops_at_end_of_turn"))


def differences(found: dict) -> list[str]:
    """What differs between llama.cpp's reading of the file and the fine-tune, in words (the ids of special tokens
    that differ in brackets: they are what to look for in the file's metadata)."""
    words = {"template_stored_identical": "the chat template stored in the file is not the model's",
             "template_renders_identical": "llama.cpp renders a conversation differently from the model's template",
             "prompt_ids_identical": "llama.cpp turns a chat prompt into different tokens than training did",
             "check_text_ids_identical": "llama.cpp splits the check text into tokens differently (the pre-tokenizer)",
             "special_ids_identical": "the file marks different special tokens from the model's ("
                                      + _special_differences(found["special_ids"]) + ")",
             "stops_at_end_of_turn": "llama.cpp does not end a reply at the end-of-turn token"}
    return [text for key, text in words.items() if not found[key]]


def _special_differences(ids: dict) -> str:
    """'end of turn: 0 in the file, 2 in the model' for each special token that differs."""
    marked, expected = ids["marked"], ids["expected"]
    return "; ".join(f"{SPECIAL_NAMES.get(name, name)}: {_id(marked.get(name))} in the file, "
                     f"{_id(expected.get(name))} in the model"
                     for name in expected if marked.get(name) != expected[name])


def _id(token: int | None) -> str:
    return "none" if token is None else f"id {token}"


@torch.no_grad()
def answers(llama: LlamaCpp, ref: Reference) -> dict:
    """llama.cpp's next-token choices and probabilities along the fine-tune's continuations, against its own."""
    agree = positions = clear = clear_agree = 0
    kl_sum, greedy = 0.0, []
    for prompt, continuation, expected in zip(ref.prompts, ref.continuations, ref.scores):
        reference_logprobs = torch.log_softmax(expected.double(), -1)
        for i, _ in enumerate(continuation):
            ranked = llama.next_token(prompt + continuation[:i], top=TOP)
            mine = max(ranked, key=ranked.get)
            top = expected[i].topk(2).values
            same = mine == int(expected[i].argmax())
            decided = float(top[0] - top[1]) >= CLEAR_MARGIN
            agree += same
            clear += decided
            clear_agree += same and decided
            positions += 1
            kl_sum += coarse_kl(reference_logprobs[i], ranked)
        ids = llama.greedy(prompt, len(continuation))["ids"]
        greedy.append(next((i for i, (a, b) in enumerate(zip(ids, continuation)) if a != b), len(continuation)))
    return {"runtime": "llama.cpp", "prompts": len(ref.prompts), "prompt_source": ref.source,
            "greedy_identical_tokens": greedy, "positions": positions, "clear_positions": clear,
            "top1_agreement": round(agree / max(positions, 1), 4),
            "clear_top1_agreement": round(clear_agree / clear, 4) if clear else None,
            "kl_divergence": round(kl_sum / max(positions, 1), 6)}
