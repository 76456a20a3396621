"""Batching tokenized examples without an attention mask.

Each row keeps its own ``position_ids`` (restarting at 0 for every packed example), and the padding at the end of a
row is a separate segment whose positions restart at 0 too. transformers builds a block-diagonal causal mask from
position ids when no attention mask is given, so no token attends across examples or to padding, for packed and
unpacked batches alike. Padding carries label -100, so it never counts in the loss.

Padding-free (``train.padding_free``): the micro-batch's rows are laid side by side in one row instead, so nothing is
padded and nothing is computed for padding. The step sees the same examples with the same loss; the first label of
each row is ignored, as the shift would anyway, because the token before it belongs to another example.
"""

from __future__ import annotations

import torch

from engine.heavy.data.tokenize import IGNORE  # the label of a position the loss skips


class PaddingCollator:
    def __init__(self, pad_token_id: int, *, padding_free: bool = False):
        self.pad_token_id = pad_token_id
        self.padding_free = padding_free
        self.real_tokens = 0  # tokens of real text batched so far (for tokens/s)

    def __call__(self, features: list[dict]) -> dict:

        if self.padding_free:
            ids, labels, positions = [], [], []
            for f in features:
                ids += f["input_ids"]
                labels += [IGNORE] + list(f["labels"][1:])
                positions += f["position_ids"]
            self.real_tokens += len(ids)
            return {"input_ids": torch.tensor([ids], dtype=torch.long),
                    "labels": torch.tensor([labels], dtype=torch.long),
                    "position_ids": torch.tensor([positions], dtype=torch.long)}
        longest = max(len(f["input_ids"]) for f in features)
        ids, labels, positions = [], [], []
        for f in features:
            n = len(f["input_ids"])
            pad = longest - n
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(f["labels"]) + [IGNORE] * pad)
            positions.append(list(f["position_ids"]) + list(range(pad)))
            self.real_tokens += n
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(positions, dtype=torch.long),
        }
