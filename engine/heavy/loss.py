"""Causal-LM loss without the full logits tensor.

The standard loss computes scores over the whole vocabulary for every position, upcast to fp32: for Llama 3's
128,256-token vocabulary at 2 × 2048 tokens that is 2 GiB, and as much again for its gradient. Here the output head
runs only on positions that are trained (prompt and padding positions carry label -100 and need no scores), in chunks
whose scores are recomputed in the backward pass instead of kept. The result equals the standard loss: the same
shift, the same ignore index, the same normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from engine.heavy.data.tokenize import IGNORE  # the label of a position the loss skips


def chunked_loss_sum(hidden, lm_head, labels, chunk_tokens: int):
    """(sum of the token losses, number of trained tokens) for hidden states (batch, seq, dim) and labels
    (batch, seq); position t predicts label t + 1."""

    targets = labels[:, 1:].reshape(-1)
    states = hidden[:, :-1, :].reshape(-1, hidden.size(-1))
    trained = targets != IGNORE
    targets, states = targets[trained], states[trained]
    total = states.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk_tokens):
        total = total + checkpoint(_chunk, lm_head, states[start:start + chunk_tokens],
                                   targets[start:start + chunk_tokens], use_reentrant=False)
    return total, targets.numel()


def _chunk(lm_head, states, targets):

    return F.cross_entropy(lm_head(states).float(), targets, reduction="sum")
