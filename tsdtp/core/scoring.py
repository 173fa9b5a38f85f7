"""Token importance: attention received, the task-specific scorer, and their hybrid.

Everything here works on the live tokens of a batch, `[B, n, ...]`, with a per-token
`query_weight` that is 1 for live tokens, 0 for padding, and the soft keep mask in training.
A layer computes the attention its tokens receive inside its own attention, from each chunk
of probabilities as it is made (`received_by_keys`), so the `[B, H, n, n]` probabilities are
never kept; `LayerRequest` says what the engine asks of one layer call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tsdtp.core.packing import TokenLayout


@dataclass(frozen=True)
class LayerRequest:
    """What the engine asks of one layer call.

    key_bias: [B, n] additive bias on each key's attention logits (0 live, very negative for
        padding and pruned tokens, `log m` in soft training); None when every key is live (the
        attention then runs without a mask, as at batch size 1).
    scored: return the attention each token receives (mean over heads and weighted queries).
    query_weight: [B, n] non-negative weight of each query in that mean (0 for padding, the soft
        mask in training); None: every query counts the same (no padding).
    cls_only: only the first token of each row ([CLS]) is a query; the layer's output holds that
        token only, one per row ([B, d]). What a [CLS] classifier needs from its last layer.
    """

    key_bias: torch.Tensor | None = None
    scored: bool = False
    query_weight: torch.Tensor | None = None
    cls_only: bool = False


def query_shares(query_weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Each query's share of the mean over queries, [B, n]: `query_weight` normalised per row."""
    return (query_weight / query_weight.sum(dim=-1, keepdim=True).clamp_min(1e-9)).to(dtype)


def received_by_keys(probs: torch.Tensor, shares: torch.Tensor | None) -> torch.Tensor:
    """Attention each key gets from a block of queries, summed over heads and queries: [B, n].

    probs: [B, H, q, n] probabilities of q queries; shares: [B, q] each query's share
    (`query_shares`), or None to sum the queries unweighted (the caller divides by their number).
    Divide the sum over every query block by H for the mean over heads.
    """
    if shares is None:
        return probs.sum(dim=(1, 2))
    return (shares[:, None, None, :] @ probs).sum(dim=(1, 2))


def attention_received(probs: torch.Tensor, query_weight: torch.Tensor) -> torch.Tensor:
    """Mean over heads and (weighted) queries of `probs[b, h, i, j]`: the attention token j gets.

    probs: [B, H, n, n] attention probabilities (rows are queries).
    query_weight: [B, n] non-negative weight of each query (0 for padding).
    Returns [B, n].
    """
    return received_by_keys(probs, query_shares(query_weight, probs.dtype)) / probs.shape[1]


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

    def forward(self, features: torch.Tensor, key_bias: torch.Tensor | None, query_weight: torch.Tensor | None,
                layout: TokenLayout | None = None) -> torch.Tensor:
        """Task attention received per token, `t(j)`, shape [B, n].

        features: [B, n, hidden], or packed [T, hidden] with the `layout` of its tokens (the
        projections then skip the padding); key_bias: [B, n] additive logit bias (0 live, very
        negative for padding, `log m` in training), or None when every token is live;
        query_weight: [B, n], or None when every query counts the same.
        """
        queries = features @ self.weight
        keys = self.phi(features)
        if layout is not None:
            queries, keys = layout.pad(queries), layout.pad(keys)
        scale = 1.0 / math.sqrt(self.d_task)
        if key_bias is None:
            logits = (queries @ keys.transpose(1, 2)).mul_(scale)
        else:
            logits = torch.baddbmm(key_bias[:, None, :].to(queries.dtype), queries, keys.transpose(1, 2), alpha=scale)
        probs = logits.softmax(dim=-1)
        if query_weight is None:
            return probs.mean(dim=1)
        return received_by_keys(probs[:, None], query_shares(query_weight, probs.dtype))
