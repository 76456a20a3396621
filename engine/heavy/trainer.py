"""transformers' Trainer with the engine's loss: the chunked causal-LM loss (engine/loss.py) when
``train.loss_chunk_tokens`` is set, in training and in evaluation (which then reports the loss only, never the
logits); the model's own loss otherwise. It also watches every micro-batch's loss for NaN or infinity, logged or not,
so a diverged step can never be saved."""

from __future__ import annotations

import torch
from transformers import Trainer

from engine.heavy.loss import chunked_loss_sum


class EngineTrainer(Trainer):
    loss_chunk_tokens = 0
    _nonfinite: torch.Tensor | None = None  # on the device: any micro-batch of this optimizer step non-finite

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = ~torch.isfinite(loss.detach()).all()  # stays on the device: no wait for the GPU per micro-batch
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad
        return loss

    def step_was_nonfinite(self) -> bool:
        """Whether a micro-batch of the optimizer step that just ended had a NaN or infinite loss (read once per
        optimizer step, then reset)."""
        bad, self._nonfinite = self._nonfinite, None
        return bad is not None and bool(bad)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chunked = self.loss_chunk_tokens and (model.training or self.args.prediction_loss_only)
        if not chunked:
            self.loss_is_scaled_for_ga = None  # the Trainer's own rule for the model's loss
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        causal_lm = _causal_lm(self.accelerator.unwrap_model(model))
        hidden = _final_hidden_states(causal_lm, model, inputs)
        total, count = chunked_loss_sum(hidden, causal_lm.lm_head, inputs["labels"], self.loss_chunk_tokens)
        if num_items_in_batch is None:  # a mean over this micro-batch; the Trainer divides by the accumulation
            self.loss_is_scaled_for_ga = False
            loss = total / max(count, 1)
        else:
            self.loss_is_scaled_for_ga = True  # normalised over the whole accumulated batch, as the model's loss is
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, {}) if return_outputs else loss  # evaluation asks for outputs but keeps only the loss


def _causal_lm(unwrapped):
    # PEFT: the LoRA layers live inside the base model's own modules
    return unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped


def _final_hidden_states(causal_lm, model, inputs):
    """The decoder's output (after the final norm), by a forward through ``model`` itself, so that wrappers such as
    DistributedDataParallel see the forward pass; the output head then scores one position only."""
    captured = []
    decoder = causal_lm.model
    hook = decoder.register_forward_hook(lambda module, args, output: captured.append(output.last_hidden_state))
    try:
        model(input_ids=inputs["input_ids"], position_ids=inputs.get("position_ids"),
              attention_mask=inputs.get("attention_mask"), use_cache=False, logits_to_keep=1)
    finally:
        hook.remove()
    return captured[-1]
