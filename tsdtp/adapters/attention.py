"""Multi-head self-attention with an additive key bias, recomputed from a layer's own projections.

Both adapters call it between their model's q/k/v projections and its output projection, so
the engine can add a per-key bias (pruning masks) and learn the attention each token receives.
A layer that is not scored runs the fused SDPA kernel. A scored layer materialises its
probabilities (a chunk of queries at a time when they are large), adds each chunk's column sums to
the attention received and drops it, so no more than a chunk of probabilities is ever alive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tsdtp.core.packing import TokenLayout
from tsdtp.core.regions import ATTENTION, PACKING, QKV, SCORER, region
from tsdtp.core.scoring import LayerRequest, query_shares, received_by_keys

PROBABILITY_BUDGET = 1 << 18
"""Attention probabilities [B, H, q, n] of at most this many numbers (1 MiB in fp32: batch 1, short batches)
are made twice the head size of queries at a time; larger ones in smaller chunks (`query_chunk`)."""


def projected(linear: nn.Module, hidden: torch.Tensor, index: int | None = None) -> torch.Tensor:
    """`linear(hidden)` in layer `index`'s qkv region.

    Call it inline in the arguments of `biased_self_attention`, so no caller keeps a reference
    to the projection and its packed copy is freed once padded.
    """
    with region(QKV, index):
        return linear(hidden)


def biased_self_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, request: LayerRequest,
                          num_heads: int, dropout: float, training: bool, layout: TokenLayout | None = None,
                          scaling: float | None = None, index: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attend over projected `query`, `key`, `value` as `request` says (key bias, scoring, [CLS] only).

    The projections are padded [B, n, d], or packed [T, d] when `layout` says where their
    tokens sit (they are padded for attention only); with `request.cls_only`, `query` holds the
    first token of each row only, [B, d]. `dropout` is the rate on the probabilities, applied
    only when `training`. `scaling` multiplies the logits; None means 1/sqrt(head size), SDPA's
    own default. Returns the context in the layout of `query` and, when `request.scored`, the
    attention each token receives [B, n]. `index` (the layer) labels the profiler regions
    (`tsdtp.core.regions`). Pass the projections straight from the projection calls: the
    packed copies are dropped as soon as they are padded.
    """
    shape = query.shape
    if layout is not None:
        with region(PACKING, index):
            key, value = layout.pad(key), layout.pad(value)
            query = query if request.cls_only else layout.pad(query)
    batch, length = key.shape[:2]
    with region(ATTENTION, index):
        query = query.view(batch, 1 if request.cls_only else length, num_heads, -1).transpose(1, 2)
        key, value = (x.view(batch, length, num_heads, -1).transpose(1, 2) for x in (key, value))
        bias = None if request.key_bias is None else request.key_bias[:, None, None, :].to(query.dtype)
        dropout = dropout if training else 0.0
        received = None
        if request.scored:
            # Head-major copies, one at a time, each replacing its token-major original: the chunks' matmuls
            # then read views instead of copying the whole key and value for every chunk.
            query = query.contiguous()
            key = key.contiguous()
            value = value.contiguous()
            scale = query.size(-1) ** -0.5 if scaling is None else scaling
            context, received = _scored_attention(query, key, value, bias, scale, request.query_weight, dropout,
                                                  training, index)
        else:
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout,
                                                     scale=scaling)
        context = context.transpose(1, 2)
    if layout is None or request.cls_only:
        return context.reshape(shape), received
    with region(PACKING, index):
        return layout.pack(context).reshape(shape), received


def query_chunk(batch: int, heads: int, queries: int, keys: int, head_size: int) -> int:
    """Queries per chunk of a scored layer. Within `PROBABILITY_BUDGET`, twice the head size (one piece for
    most single sentences; a chunk's probabilities [B, H, chunk, n] then hold at most twice as many numbers as
    the hidden states [B, n, d]); beyond it, a quarter of the head size (a quarter as many numbers as the
    hidden states, so the chunk fits in what the dense layer's own buffers leave free)."""
    if batch * heads * queries * keys <= PROBABILITY_BUDGET:
        return min(queries, 2 * head_size)
    return max(1, head_size // 4)


def _scored_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor | None,
                      scale: float, query_weight: torch.Tensor | None, dropout: float, training: bool,
                      index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Context [B, H, q, dh] and attention received [B, n] (mean over heads and weighted queries).

    The probabilities are made `query_chunk` queries at a time; each chunk's context is written into
    the context tensor, and its column sums go into the attention received, before the next chunk is made.
    """
    batch, heads, queries = query.shape[:3]
    chunk = query_chunk(batch, heads, queries, key.shape[2], query.shape[-1])
    shares = None if query_weight is None else query_shares(query_weight, query.dtype)
    count = heads if shares is not None else heads * queries
    if chunk >= queries:
        probs = _probabilities(query, key, scale, bias)
        with region(SCORER, index):
            received = received_by_keys(probs, shares).div_(count)
        return F.dropout(probs, dropout, training) @ value, received
    context = query.new_empty(*query.shape[:3], value.shape[-1])
    received = None
    for start in range(0, queries, chunk):
        probs = _probabilities(query[:, :, start:start + chunk], key, scale, bias)
        context[:, :, start:start + chunk] = F.dropout(probs, dropout, training) @ value
        with region(SCORER, index):
            part = received_by_keys(probs, None if shares is None else shares[:, start:start + chunk])
        received = part if received is None else received + part
    return context, received.div_(count)


def _probabilities(query: torch.Tensor, key: torch.Tensor, scale: float, bias: torch.Tensor | None) -> torch.Tensor:
    """`softmax(query key^T * scale + bias)`; the logits are freed as soon as the softmax is made."""
    logits = (query @ key.transpose(-1, -2)).mul_(scale)
    return (logits if bias is None else logits.add_(bias)).softmax(dim=-1)
