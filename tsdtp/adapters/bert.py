"""BERT-family encoders (transformers `BertForSequenceClassification`) for the pruning engine.

It reuses the pretrained modules' own weights and recomputes only self-attention, so the
engine can add a per-key bias and learn the attention each token receives; everything else
is the library's modules called as they are (the feed-forward's GELU in place when no
gradient is recorded).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertForSequenceClassification
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.bert.modeling_bert import BertLayer

from tsdtp.adapters.attention import biased_self_attention, projected
from tsdtp.core.packing import TokenLayout, first_tokens
from tsdtp.core.regions import (
    ATTENTION,
    ATTENTION_OUTPUT,
    EMBEDDINGS,
    FFN,
    HEAD,
    PACKING,
    QKV,
    region,
)
from tsdtp.core.scoring import LayerRequest


def feed_forward(block: BertLayer, attended: torch.Tensor) -> torch.Tensor:
    """The layer's feed-forward and residual with the library's modules.

    Without autograd, an exact GELU runs in place on the intermediate projection, so the widest
    activation of the layer exists once instead of twice (the same values, half its memory).
    """
    intermediate = block.intermediate
    if torch.is_grad_enabled() or getattr(intermediate.intermediate_act_fn, "act", None) is not F.gelu:
        return block.output(intermediate(attended), attended)
    return block.output(torch.ops.aten.gelu_(intermediate.dense(attended)), attended)


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

    def readout_slots(self, valid: torch.Tensor) -> torch.Tensor:
        """Where the head reads, [B]: [CLS], each row's first slot."""
        return torch.zeros(valid.shape[0], dtype=torch.long, device=valid.device)

    def layer(self, index: int, hidden: torch.Tensor, request: LayerRequest, layout: TokenLayout | None = None,
              positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run layer `index` as `request` says (key bias, scoring, [CLS] only; `tsdtp.core.scoring.LayerRequest`).

        `hidden` is padded [B, n, d], or packed [T, d] when `layout` says where its tokens sit:
        then the projections and feed-forward run on the live tokens only and just the
        attention sees the padded block. Returns the layer output (same layout as `hidden`, or
        [B, d] for the first token of each row with `request.cls_only`) and, when
        `request.scored`, the attention each token receives [B, n] (otherwise the fused SDPA
        kernel runs and None is returned). `positions` is unused: positions were embedded before layer 0.
        """
        block: BertLayer = self.model.bert.encoder.layer[index]
        attended, received = self._attention(block, index, hidden, request, layout)
        with region(FFN, index):
            return feed_forward(block, attended), received

    def _attention(self, block: BertLayer, index: int, hidden: torch.Tensor, request: LayerRequest,
                   layout: TokenLayout | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention and its output projection with the residual; the attention received when scored.

        Its own function, so the projections and the context are freed before the feed-forward runs.
        """
        attention = block.attention.self
        residual = hidden
        if request.cls_only:
            with region(PACKING, index):
                residual = first_tokens(hidden, layout)
        context, received = biased_self_attention(
            projected(attention.query, residual, index), projected(attention.key, hidden, index),
            projected(attention.value, hidden, index), request, self.num_heads, attention.dropout.p,
            self.model.training, layout, index=index)
        with region(ATTENTION_OUTPUT, index):
            return block.attention.output(context, residual), received

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the [CLS] state (position 0, never pruned) through pooler and head."""
        with region(HEAD):
            pooled = self.model.bert.pooler(hidden)
            return self.model.classifier(self.model.dropout(pooled))

    def dense_logits(self, batch: dict[str, torch.Tensor], cls_only_last_layer: bool = False) -> torch.Tensor:
        """The library's own dense forward: the reference for equivalence and speed.

        `cls_only_last_layer`: the library's embeddings, mask and layers but the last, then the
        last layer for [CLS] alone (`layer` with `LayerRequest.cls_only`; the library has none).
        """
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "token_type_ids", "attention_mask")}
        if not cls_only_last_layer:
            return self.model(**inputs).logits
        bert = self.model.bert
        hidden = bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        mask = create_bidirectional_mask(config=bert.config, inputs_embeds=hidden,
                                         attention_mask=batch["attention_mask"])
        for block in bert.encoder.layer[:-1]:
            hidden = block(hidden, mask)
        key_bias = None if mask is None else torch.where(batch["attention_mask"].bool(), 0.0,
                                                         torch.finfo(hidden.dtype).min)
        first, _ = self.layer(self.num_layers - 1, hidden, LayerRequest(key_bias, cls_only=True))
        return self.classify(first[:, None])

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
