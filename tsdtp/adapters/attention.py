"""Multi-head self-attention with an additive key bias, recomputed from a layer's own projections.

Both adapters call it between their model's q/k/v projections and its output projection, so
the engine can add a per-key bias (pruning masks) and read the attention probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tsdtp.core.packing import TokenLayout
from tsdtp.core.regions import ATTENTION, PACKING, region


def biased_self_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_bias: torch.Tensor,
                          num_heads: int, dropout: float, training: bool, need_probs: bool,
                          layout: TokenLayout | None = None, scaling: float | None = None, index: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attend over projected `query`, `key`, `value` with an additive key bias [B, n].

    The projections are padded [B, n, d], or packed [T, d] when `layout` says where their
    tokens sit (they are padded for attention only). `dropout` is the rate on the probabilities,
    applied only when `training`. `scaling` multiplies the logits; None means 1/sqrt(head size), SDPA's own
    default. Returns the context in the layout of `query` and, when `need_probs`, the
    probabilities [B, H, n, n] (otherwise the fused SDPA kernel runs and None is returned).
    `index` (the layer) labels the profiler regions (`tsdtp.core.regions`).
    """
    batch, length = key_bias.shape
    heads = (batch, length, num_heads, -1)
    shape = query.shape
    if layout is not None:
        with region(PACKING, index):
            query, key, value = layout.pad(query), layout.pad(key), layout.pad(value)
    with region(ATTENTION, index):
        query, key, value = (x.view(heads).transpose(1, 2) for x in (query, key, value))
        bias = key_bias[:, None, None, :].to(query.dtype)
        dropout = dropout if training else 0.0
        probs = None
        if need_probs:
            scale = query.size(-1) ** -0.5 if scaling is None else scaling
            probs = (query @ key.transpose(-1, -2)).mul_(scale).add_(bias).softmax(dim=-1)
            context = F.dropout(probs, dropout, training) @ value
        else:
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout,
                                                     scale=scaling)
        context = context.transpose(1, 2)
    if layout is None:
        return context.reshape(shape), probs
    with region(PACKING, index):
        return layout.pack(context).reshape(shape), probs
