"""Token importance: attention received, the task-specific scorer, and their hybrid.

Everything here works on the live tokens of a batch, `[B, n, ...]`, with a per-token
`query_weight` that is 1 for live tokens, 0 for padding, and the soft keep mask in training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tsdtp.core.packing import TokenLayout


def attention_received(probs: torch.Tensor, query_weight: torch.Tensor) -> torch.Tensor:
    """Mean over heads and (weighted) queries of `probs[b, h, i, j]`: the attention token j gets.

    probs: [B, H, n, n] attention probabilities (rows are queries).
    query_weight: [B, n] non-negative weight of each query (0 for padding).
    Returns [B, n].
    """
    batch, heads, queries, keys = probs.shape
    weights = (query_weight / query_weight.sum(dim=-1, keepdim=True).clamp_min(1e-9)).to(probs.dtype)
    stacked = weights.repeat(1, heads)[:, None, :] / heads
    return (stacked @ probs.reshape(batch, heads * queries, keys)).squeeze(1)


class TaskScorer(nn.Module):
    """Task-specific attention of one layer: `T = softmax((X W)(phi(X))^T / sqrt(d_task))`.

    `W` (hidden x d_task) maps the queries and `phi` (hidden -> d_task) the keys; both are
    trained through the soft keep mask.
    """

    def __init__(self, hidden_size: int, d_task: int) -> None:
        super().__init__()
        self.phi = nn.Linear(hidden_size, d_task)
        self.weight = nn.Parameter(torch.empty(hidden_size, d_task))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(hidden_size))
        self.d_task = d_task

    def forward(self, features: torch.Tensor, key_bias: torch.Tensor, query_weight: torch.Tensor,
                layout: TokenLayout | None = None) -> torch.Tensor:
        """Task attention received per token, `t(j)`, shape [B, n].

        features: [B, n, hidden], or packed [T, hidden] with the `layout` of its tokens (the
        projections then skip the padding); key_bias: [B, n] additive logit bias (0 live, very
        negative for padding, `log m` in training); query_weight: [B, n].
        """
        queries = features @ self.weight
        keys = self.phi(features)
        if layout is not None:
            queries, keys = layout.pad(queries), layout.pad(keys)
        logits = queries @ keys.transpose(1, 2) / math.sqrt(self.d_task) + key_bias[:, None, :]
        return attention_received(logits.softmax(dim=-1)[:, None], query_weight)
