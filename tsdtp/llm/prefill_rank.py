"""Ranking prompt tokens during prefill: the attention the last prompt tokens pay (LazyLLM), plus TS-DTP's
task-specific attention weighted by gamma, and the choice of survivors (protected tokens always stay).

All functions see one prompt (batch 1) and the tokens alive at one layer, in prompt order.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, apply_rotary_pos_emb, repeat_kv

from tsdtp.core.scoring import TaskScorer, attention_received


def last_query_attention(layer: LlamaDecoderLayer, layer_input: torch.Tensor, keys: torch.Tensor,
                         rotary: tuple[torch.Tensor, torch.Tensor], positions: torch.Tensor,
                         count: int) -> torch.Tensor:
    """Attention each alive token gets from the last `count` alive tokens at `layer`, mean over heads and those
    queries, shape [n].

    layer_input: [1, n, hidden], the layer's input (its queries are recomputed for the last `count` only);
    keys: [1, kv_heads, n, head_dim], the rotated keys the layer cached; rotary: the (cos, sin) of the alive
    positions [1, n, head_dim]; positions: [n] their original positions (for the causal mask among the queries).
    """
    attention = layer.self_attn
    count = min(count, layer_input.shape[1])
    normed = layer.input_layernorm(layer_input[:, -count:])
    queries = attention.q_proj(normed).view(1, count, -1, attention.head_dim).transpose(1, 2)
    cos, sin = (part[:, -count:] for part in rotary)
    queries, _ = apply_rotary_pos_emb(queries, queries, cos, sin)
    logits = queries @ repeat_kv(keys, attention.num_key_value_groups).transpose(2, 3) * attention.scaling
    visible = positions[None, :] <= positions[-count:, None]
    probs = logits.masked_fill(~visible, torch.finfo(logits.dtype).min).softmax(dim=-1)
    return attention_received(probs, torch.ones(1, count, dtype=probs.dtype))[0]


def task_attention(scorer: TaskScorer, hidden: torch.Tensor, count: int) -> torch.Tensor:
    """TS-DTP's task-specific attention received per alive token from the last `count` tokens, shape [n].

    hidden: [1, n, hidden], the layer's output for the alive tokens. A Llama layer's output is the residual
    stream, never normalised (its scale grows with depth), so the scorer's features are its RMS-normalised
    copy: without it the scorer's softmax saturates and no gradient reaches it.
    """
    tokens = hidden.shape[1]
    query_weight = torch.zeros(1, tokens, dtype=hidden.dtype)
    query_weight[:, -min(count, tokens):] = 1.0
    features = nn.functional.rms_norm(hidden, (hidden.shape[-1],))
    return scorer(features, torch.zeros(1, tokens, dtype=hidden.dtype), query_weight)[0]


def pool_scores(scores: torch.Tensor, width: int) -> torch.Tensor:
    """Each token's score raised to the best within `width` (odd) tokens around it (SnapKV's pooling): a token
    next to an important one survives with it, so phrases stay whole. Width 1 returns `scores`."""
    if width == 1:
        return scores
    return nn.functional.max_pool1d(scores[None, None], width, stride=1, padding=width // 2)[0, 0]


def choose_survivors(scores: torch.Tensor, keep: int, protected: torch.Tensor) -> torch.Tensor:
    """Indices (increasing) of the `keep` best-scored tokens; every `protected` token is among them, even
    when that makes more than `keep`."""
    keep = min(len(scores), max(keep, int(protected.sum())))
    ranked = scores.masked_fill(protected, torch.inf)
    return ranked.topk(keep).indices.sort().values
