"""What the inference and training paths of the engine share.

The adapter protocol (each layer call takes a `LayerRequest`), the output of a pass, which
layers are scored and pruned, what is recorded at each layer's input, and how one layer's
importance is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from tsdtp.core.config import PruningConfig
from tsdtp.core.packing import TokenLayout
from tsdtp.core.regions import SCORER, region
from tsdtp.core.scoring import LayerRequest


class LayerAdapter(Protocol):
    """What the engine needs from a model family (see `tsdtp.adapters`).

    `layer` gets the original position of each live token [B, n] too (a decoder rotates and masks by it).
    `readout_slots` says where each row's head reads ([CLS], or a decoder's last token), for the
    `queries` 'readout' setting; a model without a readout token raises ConfigError there.
    """

    num_layers: int

    def layer(self, index: int, hidden: torch.Tensor, request: LayerRequest, layout: TokenLayout | None = None,
              positions: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def readout_slots(self, valid: torch.Tensor) -> torch.Tensor: ...


@dataclass
class EngineOutput:
    """What one pass through the layers produced.

    hidden, valid: the live tokens after the last layer, [B, n, d] and [B, n]; under the `exit` mode
        (`tsdtp.core.exits`) every original position, the exited tokens at their last state.
    positions: original position of each output token, [B, n].
    tokens_per_layer: live tokens each layer processed, per example, [B, L].
    keep_trace: [B, L, N] True where original token j was alive at the input of layer l.
    soft_keep: training only, mean soft mask over valid tokens at each layer's input, [B, L].
    mean_importance: per-example mean cumulative importance of the candidates, [B].
    log_keep: training only, the cumulative log soft mask after the last layer, [B, N] (what a
        decoder's cross-attention must add to its logits to see the same soft pruning); in
        straight-through training, 0 in value for kept tokens (the float minimum for pruned ones)
        but carrying the soft mask's gradient.
    prune_scores, prune_candidates: training only, per pruning layer, the cumulative importance its
        decision ranks [B, N] and the tokens it may prune [B, N] (for ranking distillation).
    log_sizes: `merge` mode only, log of how many original tokens each output token stands for, [B, n]
        (what a decoder's cross-attention adds to its logits, ToMe's proportional attention).
    """

    hidden: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    tokens_per_layer: torch.Tensor
    keep_trace: torch.Tensor | None = None
    soft_keep: torch.Tensor | None = None
    mean_importance: torch.Tensor | None = None
    log_keep: torch.Tensor | None = None
    prune_scores: list[torch.Tensor] | None = None
    prune_candidates: list[torch.Tensor] | None = None
    log_sizes: torch.Tensor | None = None


def scored_layers(config: PruningConfig, num_layers: int) -> tuple[int, ...]:
    """Layers whose importance is computed (every layer up to the last pruning layer)."""
    if not config.prunes or config.spec.random_scores:
        return ()
    return tuple(range(max(config.resolved_prune_layers(num_layers), default=-1) + 1))


@dataclass(frozen=True)
class LayerPlan:
    """Which layers of a pass score their tokens and which prune after themselves."""

    num_layers: int
    prune_layers: tuple[int, ...]
    scored: tuple[int, ...]

    @classmethod
    def of(cls, config: PruningConfig, num_layers: int) -> LayerPlan:
        """The plan of `config` on a `num_layers`-layer model."""
        prune_layers = config.resolved_prune_layers(num_layers) if config.prunes else ()
        return cls(num_layers, prune_layers, scored_layers(config, num_layers))


@dataclass
class LayerRecord:
    """What is recorded at each layer's input: live tokens per example and, if asked, the keep trace."""

    trace: torch.Tensor | None
    tokens: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def start(cls, valid: torch.Tensor, num_layers: int, record_trace: bool) -> LayerRecord:
        """An empty record for a batch with validity mask `valid` [B, N]."""
        batch, length = valid.shape
        trace = torch.zeros(batch, num_layers, length, dtype=torch.bool, device=valid.device) if record_trace else None
        return cls(trace)

    def add(self, index: int, positions: torch.Tensor, live: torch.Tensor, counted: torch.Tensor | None = None
            ) -> None:
        """Record the tokens `live` [B, n], at original `positions` [B, n], entering layer `index`.

        `counted` (default `live`): the tokens the layer processes, when it also runs tokens that are no
        input token (a fused token, `tsdtp.core.fusion`): they count in `tokens_per_layer`, not in the trace.
        """
        self.tokens.append((live if counted is None else counted).sum(dim=-1))
        if self.trace is not None:
            self.trace[:, index].scatter_(1, positions, live)

    def tokens_per_layer(self) -> torch.Tensor:
        """Live tokens each layer processed, [B, L]."""
        return torch.stack(self.tokens, dim=1)


def start_positions(valid: torch.Tensor) -> torch.Tensor:
    """The original position of every token of a batch, [B, N]."""
    batch, length = valid.shape
    return torch.arange(length, device=valid.device).expand(batch, length)


def readout_weight(adapter: LayerAdapter, valid: torch.Tensor) -> torch.Tensor:
    """The query weight [B, n] of `queries` 'readout': 1 at each row's readout token, 0 elsewhere."""
    weight = torch.zeros(valid.shape, device=valid.device)
    weight[torch.arange(valid.shape[0], device=valid.device), adapter.readout_slots(valid)] = 1.0
    return weight


def add_layer_importance(importance: torch.Tensor, config: PruningConfig, scorer: nn.Module, index: int,
                         received: torch.Tensor, weight: torch.Tensor | None, source: torch.Tensor,
                         key_bias: torch.Tensor | None, layout: TokenLayout | None = None) -> torch.Tensor:
    """`importance` plus layer `index`'s hybrid score: the attention received the layer returned, plus
    gamma times the task scorer's attention over `source` (the layer input, or the embeddings) when
    it is used. `weight` and `key_bias` are None when every token is live (`LayerRequest`)."""
    with region(SCORER, index):
        if config.uses_scorer:
            received = received + config.gamma * scorer(source, key_bias, weight, layout=layout)
        return importance + received


def mean_importance(importance: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-example mean of `importance` [B, n] under the candidate `weight` [B, n], [B]."""
    return (weight * importance).sum(-1) / weight.sum(-1).clamp_min(1e-9)
