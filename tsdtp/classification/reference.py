"""`reference-masking`: the paper notebook's algorithm, kept to show that masking saves nothing.

Pass 1 runs the whole encoder and sums, over all layers, the hybrid attention received
`a_l + gamma * t`, where `t` comes from features of the input embeddings (the notebook's
`task_specific_weight` is unused, so `T = softmax(F F^T / sqrt(d_task))`). Tokens below
`mean - k * std` are masked out of attention, and pass 2 runs the whole encoder again.
No token is removed: both passes process every token.
"""

from __future__ import annotations

import math

import torch

from tsdtp.classification.model import PrunedClassifier
from tsdtp.core.pruning import hard_keep_dynamic
from tsdtp.core.regions import KEEP, SCORER, region
from tsdtp.core.scoring import LayerRequest, attention_received


def reference_masking_forward(model: PrunedClassifier, batch: dict[str, torch.Tensor]
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of pass 2, tokens per layer [B, L] (all of them, twice) and the mask as a trace."""
    adapter, config = model.adapter, model.pruning
    valid = batch["attention_mask"].bool()
    special = adapter.special_mask(batch["input_ids"]) & valid
    embeddings = adapter.embed(batch)
    weight = valid.float()
    neg = torch.finfo(embeddings.dtype).min
    bias = torch.where(valid, 0.0, neg)

    with region(SCORER):
        features = model.scorers[0].phi(embeddings)
        logits = features @ features.transpose(1, 2) / math.sqrt(features.shape[-1]) + bias[:, None, :]
        task_attention = attention_received(logits.softmax(dim=-1)[:, None], weight)
    importance = torch.zeros_like(weight)
    hidden = embeddings
    for index in range(adapter.num_layers):
        hidden, received = adapter.layer(index, hidden, LayerRequest(bias, scored=True, query_weight=weight))
        with region(SCORER, index):
            importance = importance + received + config.gamma * task_attention
    with region(KEEP):
        keep = hard_keep_dynamic(importance, valid & ~special, valid, config.k)

    hidden = embeddings
    masked_bias = torch.where(keep, 0.0, neg)
    for index in range(adapter.num_layers):
        hidden, _ = adapter.layer(index, hidden, LayerRequest(masked_bias))
    tokens = valid.sum(dim=-1, keepdim=True).expand(-1, adapter.num_layers)
    trace = keep[:, None, :].expand(-1, adapter.num_layers, -1)
    return adapter.classify(hidden), tokens, trace
