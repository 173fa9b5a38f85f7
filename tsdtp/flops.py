"""Analytic FLOPs of an encoder pass from the live tokens each layer saw (multiply-add = 2).

Per layer with n live tokens, hidden d and FFN width f:
    projections (Q, K, V, O)  8 n d^2
    feed-forward              4 n d f          (24 n d^2 in total when f = 4d)
    attention scores + mix    4 n^2 d
The task scorer adds 4 n d d_task + 2 n^2 d_task on every layer it scores.
Embedding lookups, the pooler and the head are the same for every method and left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EncoderShape:
    """The sizes the FLOPs depend on."""

    hidden: int
    intermediate: int
    num_layers: int
    d_task: int


def layer_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one encoder layer on `n` live tokens (elementwise over a tensor of counts)."""
    n = n.double()
    d = shape.hidden
    return 8 * n * d * d + 4 * n * d * shape.intermediate + 4 * n * n * d


def scorer_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of the task-specific scorer on `n` live tokens."""
    n = n.double()
    return 4 * n * shape.hidden * shape.d_task + 2 * n * n * shape.d_task


@dataclass(frozen=True)
class FlopsReport:
    """Totals over a set of examples, and the ratios against dense."""

    dense: float
    layers: float
    scorer: float

    @property
    def total(self) -> float:
        """Pruned encoder FLOPs including the scorer."""
        return self.layers + self.scorer

    @property
    def ratio(self) -> float:
        """Pruned over dense, scorer included."""
        return self.total / self.dense

    @property
    def scorer_overhead(self) -> float:
        """Scorer FLOPs as a fraction of dense FLOPs."""
        return self.scorer / self.dense


def encoder_flops(tokens_per_layer: torch.Tensor, shape: EncoderShape, scored_layers: tuple[int, ...],
                  passes: int = 1) -> FlopsReport:
    """FLOPs for examples whose layer l processed `tokens_per_layer[b, l]` live tokens.

    The dense reference runs every layer on the tokens of layer 0. `passes` multiplies the
    layer cost (2 for the reference notebook's run-twice masking).
    """
    dense = float(layer_flops(tokens_per_layer[:, 0], shape).sum() * shape.num_layers)
    layers = float(layer_flops(tokens_per_layer, shape).sum()) * passes
    scorer = float(sum(scorer_flops(tokens_per_layer[:, l], shape).sum() for l in scored_layers))
    return FlopsReport(dense, layers, scorer)
