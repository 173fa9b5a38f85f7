"""Marian encoders (transformers `MarianMTModel`) for the pruning engine.

It reuses the library modules' own weights: the scaled token embedding plus the sinusoidal
positions of the original token order, and in every layer the projections, the post-norm
layer norms and the feed-forward. Only self-attention is recomputed, so the engine can add a
per-key bias and learn the attention each token receives. Positions are added before the first
layer, so removing tokens later never changes where the survivors are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import MarianMTModel
from transformers.activations import ACT2FN
from transformers.models.marian.modeling_marian import MarianEncoderLayer

from tsdtp.adapters.attention import biased_self_attention, projected
from tsdtp.core.packing import TokenLayout
from tsdtp.core.regions import ATTENTION_OUTPUT, EMBEDDINGS, FFN, region
from tsdtp.core.scoring import LayerRequest
from tsdtp.errors import ConfigError


class MarianAdapter:
    """The encoder of one `MarianMTModel` seen layer by layer."""

    def __init__(self, model: MarianMTModel, special_ids: list[int]) -> None:
        self.model = model
        config = model.config
        self.encoder = model.get_encoder()
        self.num_layers: int = config.encoder_layers
        self.hidden_size: int = config.d_model
        self.num_heads: int = config.encoder_attention_heads
        self.intermediate_size: int = config.encoder_ffn_dim
        self.activation = ACT2FN[config.activation_function]
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Scaled token embeddings plus sinusoidal positions, with the encoder's dropout: [B, N, d]."""
        encoder = self.encoder
        with region(EMBEDDINGS):
            embeds = encoder.embed_tokens(input_ids) * encoder.embed_scale
            hidden = embeds + encoder.embed_positions(embeds.shape[:-1])
            return F.dropout(hidden, encoder.dropout, self.model.training)

    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """True where the token is special (`</s>`) and must survive."""
        return torch.isin(input_ids, self.special_ids.to(input_ids.device))

    def readout_slots(self, valid: torch.Tensor) -> torch.Tensor:
        """Refused: the decoder reads every source token, so no single token is the readout."""
        raise ConfigError("queries 'readout' needs a model whose head reads one token; a translation encoder "
                          "is read whole by the decoder")

    def layer(self, index: int, hidden: torch.Tensor, request: LayerRequest, layout: TokenLayout | None = None,
              positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run encoder layer `index` as `request` says (`tsdtp.core.scoring.LayerRequest`; not `cls_only`).

        `hidden` is padded [B, n, d], or packed [T, d] when `layout` says where its tokens sit
        (projections, norms and feed-forward then run on the live tokens only). Returns the
        layer output in the layout of `hidden` and, when `request.scored`, the attention each
        token receives [B, n] (otherwise the fused SDPA kernel runs and None is returned).
        The parts run in the same profiler regions as the BERT adapter's (`tsdtp.core.regions`). `positions`
        is unused: the sinusoidal positions were added at embedding.
        """
        block: MarianEncoderLayer = self.encoder.layers[index]
        attention = block.self_attn
        training = self.model.training
        context, received = biased_self_attention(
            projected(attention.q_proj, hidden, index), projected(attention.k_proj, hidden, index),
            projected(attention.v_proj, hidden, index), request, self.num_heads, attention.dropout, training, layout,
            scaling=attention.scaling, index=index)
        with region(ATTENTION_OUTPUT, index):
            attended = F.dropout(attention.out_proj(context), block.dropout, training)
            hidden = block.self_attn_layer_norm(hidden + attended)
        with region(FFN, index):
            inner = F.dropout(self.activation(block.fc1(hidden)), block.activation_dropout, training)
            output = F.dropout(block.fc2(inner), block.dropout, training)
            return block.final_layer_norm(hidden + output), received

    def dense_encoder(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The library's own dense encoder output [B, N, d]: the reference for equivalence."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
