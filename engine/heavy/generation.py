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
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

from engine.heavy import device as devices
from engine.heavy import model_setup
from engine.heavy.data.templates import ensure_chat_template
from engine.heavy.end_of_turn import end_of_turn_ids
from engine.heavy.models import tokenizer as tokenizers
from engine.light.config import RunConfig


@dataclass
class Reply:
    text: str
    reason: str  # "end", "length" or "cancelled"
    tokens: int
    elapsed_s: float


class Generator:
    def __init__(self, model, tokenizer, has_adapter: bool):
        self.model, self.tokenizer, self.has_adapter = model, tokenizer, has_adapter
        self.end_ids = stop_ids(model, tokenizer)
        self.base_precision = ""

    @classmethod
    def load(cls, base_folder: Path, adapter: Path | None = None, *, device: str = "cpu",
             config: RunConfig | None = None) -> "Generator":
        """The base model loaded as ``config`` says a run trained on it (4-bit nf4 or 16/32-bit, in the run's compute
        precision), so the adapter meets the weights it was trained against; then the adapter. Without a config (a
        base model alone): 4-bit on a GPU, full precision on the CPU."""
        config = config or RunConfig(quantization="nf4" if device == "cuda" else "none")
        dtype = devices.compute_dtype(config.compute_dtype, device)
        model = AutoModelForCausalLM.from_pretrained(
            base_folder, dtype=dtype, device_map={"": 0 if device == "cuda" else "cpu"},
            quantization_config=model_setup.quantization_config(config, dtype))
        # The adapter folder holds the tokenizer and chat template the run trained with.
        tokenizer = tokenizers.load(adapter if adapter else base_folder)
        ensure_chat_template(tokenizer)
        if adapter:
            model = PeftModel.from_pretrained(model, adapter)
        model.eval()
        generator = cls(model, tokenizer, adapter is not None)
        generator.base_precision = ("4-bit nf4" if config.quantization == "nf4" else str(dtype).removeprefix("torch."))
        return generator

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


def stop_ids(model, tokenizer) -> set[int]:
    """The token ids generation stops at: the model's end-of-sequence ids and every end-of-turn token."""
    ids = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    ids.update(end_of_turn_ids(tokenizer))
    return ids
