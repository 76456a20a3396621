"""Which tokens end an assistant's turn: the one the chat template writes after a reply, the end-of-sequence token,
and the end-of-turn tokens of the LLaMA families (Llama 3's <|eot_id|> and <|end_of_text|>, ChatML's <|im_end|>,
Llama 2's </s>). Generation stops at any of them; an export lists all of them (generation_config, GGUF, Ollama's stop
parameters), so the exported model stops where the fine-tune does.

Of these, one is *the* end of a turn (a GGUF's ``eot_token_id``): the token the chat template closes a reply with
(Llama 3's <|eot_id|>, not its <|end_of_text|>; Llama 3.1's <|eot_id|>, not its <|eom_id|>, which ends a tool call
and is marked apart as ``eom_token_id``)."""

from __future__ import annotations

KNOWN = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "</s>")
END_OF_MESSAGE = "<|eom_id|>"  # Llama 3.1+: the model hands over to a tool and expects its result
_MARK = "\u2063reply-end-probe\u2063"


def template_terminator(tokenizer) -> str:
    """The special token the chat template writes right after an assistant's reply ('' if none)."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "?"}, {"role": "assistant", "content": _MARK}],
                                             tokenize=False)
    except Exception:  # a template that refuses the probe: fall back to the known tokens
        return ""
    after = text[text.find(_MARK) + len(_MARK):] if _MARK in text else ""
    specials = sorted(set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()},
                      key=len, reverse=True)
    return next((s for s in specials if s and after.startswith(s)), "")


def end_of_turn_tokens(tokenizer) -> list[str]:
    """The end-of-turn tokens this tokenizer has, the template's own first."""
    vocab = tokenizer.get_vocab()
    found = [t for t in (template_terminator(tokenizer), tokenizer.eos_token, *KNOWN) if t and t in vocab]
    return list(dict.fromkeys(found))


def end_of_turn_ids(tokenizer) -> list[int]:
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in end_of_turn_tokens(tokenizer)]


def turn_end_id(tokenizer) -> int | None:
    """The token the chat template writes after a reply, or the end-of-sequence token when it writes none."""
    vocab = tokenizer.get_vocab()
    closing = template_terminator(tokenizer)
    return vocab[closing] if closing in vocab else tokenizer.eos_token_id


def message_end_id(tokenizer) -> int | None:
    """Llama 3.1's end of a message that hands over to a tool (None for the families without one)."""
    return tokenizer.get_vocab().get(END_OF_MESSAGE)
