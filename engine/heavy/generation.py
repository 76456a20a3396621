"""Loading a base model (optionally with a run's adapter) and generating replies with the chat template.

Shared by the chat server and the demo. The same loaded weights answer as the base model or the fine-tuned one:
PEFT's ``disable_adapter`` switches the LoRA layers off for one request.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

from engine.heavy.data.templates import ensure_chat_template

END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "</s>")


@dataclass
class Reply:
    text: str
    reason: str  # "end", "length" or "cancelled"
    tokens: int
    elapsed_s: float


class Generator:
    def __init__(self, model, tokenizer, has_adapter: bool):
        self.model, self.tokenizer, self.has_adapter = model, tokenizer, has_adapter
        self.end_ids = _end_ids(model, tokenizer)

    @classmethod
    def load(cls, base_folder: Path, adapter: Path | None = None, *, device: str = "cpu") -> "Generator":


        kwargs = {"dtype": torch.float32, "device_map": {"": "cpu"}}
        if device == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs = {"dtype": dtype, "device_map": {"": 0}, "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype)}
        model = AutoModelForCausalLM.from_pretrained(base_folder, **kwargs)
        # The adapter folder holds the tokenizer and chat template the run trained with.
        tokenizer = AutoTokenizer.from_pretrained(adapter if adapter else base_folder)
        ensure_chat_template(tokenizer)
        if adapter:

            model = PeftModel.from_pretrained(model, adapter)
        model.eval()
        return cls(model, tokenizer, adapter is not None)

    def reply(self, messages: list[dict], *, system: str = "", adapter: bool = True, temperature: float = 0.0,
              top_p: float = 1.0, top_k: int = 0, max_new_tokens: int = 256, repetition_penalty: float = 1.0,
              on_text: Callable[[str], None] | None = None, should_stop: Callable[[], bool] | None = None) -> Reply:

        chat = ([{"role": "system", "content": system}] if system else []) + list(messages)
        inputs = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True).to(self.model.device)
        pieces: list[str] = []

        class _Stream(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False):
                if text:
                    pieces.append(text)
                    if on_text:
                        on_text(text)

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return bool(should_stop and should_stop())

        sampling = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k or None}
        switch = self.model.disable_adapter() if (self.has_adapter and not adapter) else nullcontext()
        started = time.monotonic()
        with torch.inference_mode(), switch:
            output = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
                eos_token_id=sorted(self.end_ids), pad_token_id=self.tokenizer.pad_token_id or min(self.end_ids),
                streamer=_Stream(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                stopping_criteria=StoppingCriteriaList([_Cancel()]), **sampling,
            )
        new = output[0, inputs["input_ids"].shape[1]:].tolist()
        if should_stop and should_stop():
            reason = "cancelled"
        elif new and new[-1] in self.end_ids:
            reason = "end"
        else:
            reason = "length"
        return Reply("".join(pieces), reason, len(new), time.monotonic() - started)


def _end_ids(model, tokenizer) -> set[int]:
    ids = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return ids
