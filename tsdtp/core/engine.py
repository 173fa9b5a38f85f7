"""The generic layer loop: run a layer on the live tokens, score them, decide, prune.

The caller names the mode (`EngineMode`); nothing is inferred from global autograd state.
Inference (`tsdtp.core.engine_inference`) physically removes the pruned tokens, with the
hidden states packed or padded. Training (`tsdtp.core.engine_training`) removes nothing and
prunes through soft masks, or, straight-through, through hard decisions that carry the soft
masks' gradients.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine_common import EngineOutput, LayerAdapter, scored_layers
from tsdtp.core.engine_inference import run_inference
from tsdtp.core.engine_training import run_training

__all__ = ["EngineMode", "EngineOutput", "LayerAdapter", "run_layers", "scored_layers"]

class EngineMode(Enum):
    """How a pass runs.

    PACKED: inference; pruned tokens are removed and the hidden states hold the live tokens
        only, re-padded just for attention (`tsdtp.core.packing`).
    PADDED: inference; pruned tokens are removed and the batch stays a padded block (the
        reference the packed path is checked against; works with autograd like every mode).
    SOFT: training; soft masks `log m` on the attention keys, nothing removed.
    STRAIGHT_THROUGH: training; hard keep decisions forward, soft-mask gradients backward.
    """

    PACKED = "packed"
    PADDED = "padded"
    SOFT = "soft"
    STRAIGHT_THROUGH = "straight-through"

    @property
    def trains(self) -> bool:
        """Whether this is a training mode (soft masks carry the gradients to the scorers)."""
        return self in (EngineMode.SOFT, EngineMode.STRAIGHT_THROUGH)


def run_layers(adapter: LayerAdapter, scorers: nn.ModuleList, config: PruningConfig, embeddings: torch.Tensor,
               valid: torch.Tensor, special: torch.Tensor, *, mode: EngineMode, record_trace: bool = False,
               generator: torch.Generator | None = None, cls_only_last_layer: bool = False) -> EngineOutput:
    """Run every layer with the pruning of `config` in `mode` and return the surviving tokens.

    embeddings: [B, N, d]; valid: [B, N] (False for padding); special: [B, N] never pruned.
    `generator` draws the `random` baseline's scores (inference only). `cls_only_last_layer`
    (inference only) runs the last layer for [CLS] alone (`run_inference`). A training mode
    refuses a method without a differentiable form with ValueError.
    """
    if not mode.trains:
        return run_inference(adapter, scorers, config, embeddings, valid, special, packed=mode is EngineMode.PACKED,
                             record_trace=record_trace, generator=generator, cls_only_last_layer=cls_only_last_layer)
    if not config.spec.differentiable:
        raise ValueError(f"method {config.method!r} has no differentiable (training) form")
    return run_training(adapter, scorers, config, embeddings, valid, special,
                        straight_through=mode is EngineMode.STRAIGHT_THROUGH, record_trace=record_trace)
