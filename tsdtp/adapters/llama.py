"""Llama-architecture decoders (transformers `LlamaForCausalLM`, `LlamaForSequenceClassification`) for the engine.

It reuses the model's own modules and weights: the token embedding, each layer's RMS norms, projections and
MLP, the rotary embedding, the final norm and the head. Only self-attention is recomputed, so the engine can
add a per-key bias and read the attention probabilities. Three things differ from the encoders:
- rotary positions are applied per token from its original position, which the engine carries and never
  renumbers, so removing tokens never changes where the survivors are;
- attention is causal over the survivors by original position (a query sees the keys at or before it);
- grouped-query attention: each key/value head serves `num_heads / num_kv_heads` query heads;
- the attention a token receives is averaged over the queries that can see it, each measured against its
  uniform share (`causal_attention_received`), so a token's score does not fall with its position.
The label (or the next token) is read at the last valid token, which `special_mask` marks so it is never pruned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaForCausalLM, LlamaForSequenceClassification
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, apply_rotary_pos_emb

from tsdtp.core.packing import TokenLayout
from tsdtp.core.regions import (
    ATTENTION,
    ATTENTION_OUTPUT,
    EMBEDDINGS,
    FFN,
    HEAD,
    LAYERNORM,
    PACKING,
    QKV,
    SCORER,
    region,
)
from tsdtp.core.scoring import LayerRequest, received_by_keys
from tsdtp.errors import ConfigError

LlamaModelWithHead = LlamaForCausalLM | LlamaForSequenceClassification


def last_valid_token(valid: torch.Tensor) -> torch.Tensor:
    """The slot of each row's last valid token, [B] (rows keep their tokens in order, padded either side)."""
    slots = torch.arange(valid.shape[-1], device=valid.device)
    return (slots * valid).argmax(dim=-1)


def causal_bias(key_bias: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention bias [B, 1, n, n]: `key_bias` [B, n] where a key's original position is at or
    before the query's (`positions` [B, n]), the float minimum elsewhere (never -inf, so no row is NaN)."""
    allowed = positions[:, None, :] <= positions[:, :, None]
    neg = torch.finfo(dtype).min
    return torch.where(allowed, key_bias[:, None, :].to(dtype), neg)[:, None]


def causal_attention_received(probs: torch.Tensor, query_weight: torch.Tensor, positions: torch.Tensor
                              ) -> torch.Tensor:
    """The attention each token receives under causal attention, [B, n]: the mean over heads and over the
    (weighted) queries that can see it, each query's probability measured against its uniform share.

    A key is seen only by the queries at or after it, and a query spreads its attention over the keys it sees,
    so the plain mean over every query (`tsdtp.core.scoring.attention_received`) ranks a token by its position
    more than by its content: a prompt's last words, the text to classify, would be pruned first. Here query
    i's probability on key j counts as `A[i, j] * n_i` (n_i: the weight of the keys i sees, so a query that
    attends uniformly gives each 1), averaged over the queries that see j: uniform attention scores every
    token 1. probs [B, H, n, n] (rows are queries), query_weight [B, n] (0 for padding; the soft mask in
    training, which weighs keys too), positions [B, n] (original positions).
    """
    weight = query_weight.to(probs.dtype)
    sees = (positions[:, :, None] >= positions[:, None, :]).to(probs.dtype)
    keys_seen = (sees * weight[:, None, :]).sum(dim=-1)
    viewers = (sees * weight[:, :, None]).sum(dim=1)
    received = received_by_keys(probs, weight * keys_seen) / probs.shape[1]
    return received / viewers.clamp_min(1e-9)


class LlamaAdapter:
    """One Llama-architecture model (causal LM or sequence classifier) seen layer by layer."""

    def __init__(self, model: LlamaModelWithHead, special_ids: list[int]) -> None:
        self.model = model
        self.body = model.model
        config = model.config
        self.num_layers: int = config.num_hidden_layers
        self.hidden_size: int = config.hidden_size
        self.num_heads: int = config.num_attention_heads
        self.num_kv_heads: int = config.num_key_value_heads
        self.head_dim: int = self.body.layers[0].self_attn.head_dim
        self.intermediate_size: int = config.intermediate_size
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)

    @property
    def head(self) -> nn.Linear:
        """The output head: the classifier's `score`, or the causal LM's `lm_head`."""
        return self.model.score if isinstance(self.model, LlamaForSequenceClassification) else self.model.lm_head

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings [B, N, d] (positions enter each layer's attention as rotations)."""
        with region(EMBEDDINGS):
            return self.body.embed_tokens(input_ids)

    def special_mask(self, input_ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """True where the token must survive: a special id (chat-template markers), or each row's last valid
        token (where the label or the next token is read; the last column when `valid` is None)."""
        special = torch.isin(input_ids, self.special_ids.to(input_ids.device))
        last = last_valid_token(valid) if valid is not None else torch.full_like(input_ids[:, 0], -1)
        special[torch.arange(input_ids.shape[0], device=input_ids.device), last] = True
        return special

    def readout_slots(self, valid: torch.Tensor) -> torch.Tensor:
        """Where the head reads, [B]: each row's last valid token (the label, or the next token)."""
        return last_valid_token(valid)

    def layer(self, index: int, hidden: torch.Tensor, request: LayerRequest, layout: TokenLayout | None = None,
              positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run decoder layer `index` as `request` says (key bias, scoring), causal over the original `positions`.

        `hidden` is padded [B, n, d], or packed [T, d] when `layout` says where its tokens sit (norms,
        projections and MLP then run on the live tokens only). `positions` [B, n]: the original position of
        each slot (None: 0..n-1, every token in place). Returns the layer output in the layout of `hidden`
        and, when `request.scored`, the attention each token receives [B, n] (otherwise SDPA runs, None
        returned). `request.cls_only` is refused: a decoder reads its label at the last token, not the first.
        """
        if request.cls_only:
            raise ConfigError("cls_only_last_layer needs a [CLS] classifier; a Llama model reads the last token")
        block: LlamaDecoderLayer = self.body.layers[index]
        batch, length = (hidden.shape[:2] if layout is None else layout.valid.shape)
        key_bias = request.key_bias
        if key_bias is None:
            key_bias = torch.zeros(batch, length, device=hidden.device)
        if positions is None:
            positions = torch.arange(length, device=hidden.device).expand(batch, length)
        with region(LAYERNORM, index):
            normed = block.input_layernorm(hidden)
        with region(QKV, index):
            query, key, value = self._rotated_projections(block, normed, positions, layout)
        context, probs = self._attend(block, query, key, value, causal_bias(key_bias, positions, hidden.dtype),
                                      request.scored, layout, index)
        with region(ATTENTION_OUTPUT, index):
            hidden = hidden + block.self_attn.o_proj(context)
        with region(LAYERNORM, index):
            normed = block.post_attention_layernorm(hidden)
        with region(FFN, index):
            output = hidden + block.mlp(normed)
        if probs is None:
            return output, None
        weight = request.query_weight if request.query_weight is not None else torch.ones(batch, length)
        with region(SCORER, index):
            return output, causal_attention_received(probs, weight.to(probs.device), positions)

    def _rotated_projections(self, block: LlamaDecoderLayer, normed: torch.Tensor, positions: torch.Tensor,
                             layout: TokenLayout | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query, key and value [..., heads, head_dim] of `normed`, query and key rotated to their positions."""
        attention = block.self_attn
        token_positions = layout.pack(positions) if layout is not None else positions
        query, key, value = (projection(normed).unflatten(-1, (-1, self.head_dim))
                             for projection in (attention.q_proj, attention.k_proj, attention.v_proj))
        cos, sin = self.body.rotary_emb(normed, token_positions)
        query, key = apply_rotary_pos_emb(query, key, cos, sin, unsqueeze_dim=-2)
        return query, key, value

    def _attend(self, block: LlamaDecoderLayer, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                bias: torch.Tensor, need_probs: bool, layout: TokenLayout | None, index: int
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Grouped-query attention of [..., heads, head_dim] inputs under `bias` [B, 1, n, n]; the context comes
        back in the layout of `query` with its heads flattened, and the probabilities when `need_probs`."""
        attention = block.self_attn
        if layout is not None:
            with region(PACKING, index):
                query, key, value = layout.pad(query), layout.pad(key), layout.pad(value)
        with region(ATTENTION, index):
            query, key, value = (x.transpose(1, 2) for x in (query, key, value))
            dropout = attention.attention_dropout if self.model.training else 0.0
            probs = None
            if need_probs:
                groups = self.num_heads // self.num_kv_heads
                key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
                probs = (query @ key.transpose(-1, -2)).mul_(attention.scaling).add_(bias).softmax(dim=-1)
                context = F.dropout(probs, dropout, self.model.training) @ value
            else:
                context = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout,
                                                         scale=attention.scaling, enable_gqa=True)
            context = context.transpose(1, 2)
        if layout is not None:
            with region(PACKING, index):
                context = layout.pack(context)
        return context.flatten(-2), probs

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head on the final norm of `hidden` [..., d]: next-token logits (causal LM) or class logits."""
        with region(HEAD):
            return self.head(self.body.norm(hidden))

    def classify(self, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] at each row's last valid token of the engine's output `hidden` [B, n, d]."""
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_valid_token(valid)]
        return self.head_logits(last)

    def dense_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The library's own dense forward: every token's logits [B, N, V] (causal LM), or the classifier's
        [B, C] at the last non-padding token. The reference for equivalence and speed."""
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def module_components(self) -> list[tuple[nn.Module, str, int | None]]:
        """The library modules of `dense_logits` as (module, component, layer), for the time breakdown."""
        labelled: list[tuple[nn.Module, str, int | None]] = [(self.body.embed_tokens, EMBEDDINGS, None)]
        for index, block in enumerate(self.body.layers):
            attention = block.self_attn
            labelled += [(attention, ATTENTION, index), (attention.o_proj, ATTENTION_OUTPUT, index),
                         (block.mlp, FFN, index), (block.input_layernorm, LAYERNORM, index),
                         (block.post_attention_layernorm, LAYERNORM, index)]
            labelled += [(linear, QKV, index) for linear in (attention.q_proj, attention.k_proj, attention.v_proj)]
        return labelled + [(self.body.norm, HEAD, None), (self.head, HEAD, None)]
