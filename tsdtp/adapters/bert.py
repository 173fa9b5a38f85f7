"""BERT-family encoders (transformers `BertForSequenceClassification`) for the pruning engine.

It reuses the pretrained modules' own weights and recomputes only self-attention, so the
engine can add a per-key bias and read the attention probabilities; everything else is the
library's modules called as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertForSequenceClassification
from transformers.models.bert.modeling_bert import BertLayer

from tsdtp.adapters.attention import biased_self_attention
from tsdtp.core.packing import TokenLayout
from tsdtp.core.regions import (
    ATTENTION,
    ATTENTION_OUTPUT,
    EMBEDDINGS,
    FFN,
    HEAD,
    QKV,
    region,
)


class BertAdapter:
    """One `BertForSequenceClassification` seen layer by layer."""

    def __init__(self, model: BertForSequenceClassification, special_ids: list[int]) -> None:
        self.model = model
        config = model.config
        self.num_layers: int = config.num_hidden_layers
        self.hidden_size: int = config.hidden_size
        self.num_heads: int = config.num_attention_heads
        self.intermediate_size: int = config.intermediate_size
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input embeddings [B, N, hidden]."""
        with region(EMBEDDINGS):
            return self.model.bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))

    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """True where the token is special and must survive."""
        return torch.isin(input_ids, self.special_ids.to(input_ids.device))

    def layer(self, index: int, hidden: torch.Tensor, key_bias: torch.Tensor, need_probs: bool,
              layout: TokenLayout | None = None, positions: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run layer `index` with an additive key bias [B, n].

        `hidden` is padded [B, n, d], or packed [T, d] when `layout` says where its tokens sit:
        then the projections and feed-forward run on the live tokens only and just the
        attention sees the padded block. Returns the layer output (same layout as `hidden`)
        and, when `need_probs`, the attention probabilities [B, H, n, n] (otherwise the fused
        SDPA kernel runs and None is returned). `positions` is unused: positions were embedded before layer 0.
        """
        block: BertLayer = self.model.bert.encoder.layer[index]
        attention = block.attention.self
        with region(QKV, index):
            query, key, value = attention.query(hidden), attention.key(hidden), attention.value(hidden)
        context, probs = biased_self_attention(query, key, value, key_bias, self.num_heads, attention.dropout.p,
                                               self.model.training, need_probs, layout, index=index)
        with region(ATTENTION_OUTPUT, index):
            attended = block.attention.output(context, hidden)
        with region(FFN, index):
            return block.output(block.intermediate(attended), attended), probs

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the [CLS] state (position 0, never pruned) through pooler and head."""
        with region(HEAD):
            pooled = self.model.bert.pooler(hidden)
            return self.model.classifier(self.model.dropout(pooled))

    def dense_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The library's own dense forward: the reference for equivalence and speed."""
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "token_type_ids", "attention_mask")}
        return self.model(**inputs).logits

    def module_components(self) -> list[tuple[nn.Module, str, int | None]]:
        """The library modules of `dense_logits` as (module, component, layer), for the time breakdown.

        The dense forward has no regions of ours, so the profiler labels these modules
        instead (innermost wins: a layer's query/key/value linears inside its self-attention).
        """
        bert = self.model.bert
        labelled: list[tuple[nn.Module, str, int | None]] = [(bert.embeddings, EMBEDDINGS, None)]
        for index, block in enumerate(bert.encoder.layer):
            attention = block.attention.self
            labelled += [(attention, ATTENTION, index), (block.attention.output, ATTENTION_OUTPUT, index),
                         (block.intermediate, FFN, index), (block.output, FFN, index)]
            labelled += [(linear, QKV, index) for linear in (attention.query, attention.key, attention.value)]
        return labelled + [(bert.pooler, HEAD, None), (self.model.classifier, HEAD, None)]
