"""Analytic FLOPs of an encoder pass from the live tokens each layer saw (multiply-add = 2).

Per layer with n live tokens, hidden d and FFN width f:
    projections (Q, K, V, O)  8 n d^2
    feed-forward              4 n d f          (24 n d^2 in total when f = 4d)
    attention scores + mix    4 n^2 d
The task scorer adds 4 n d d_task + 2 n^2 d_task on every layer it scores; the `merge` exit mode
adds its similarities and weighted sums after every pruning layer (`tsdtp.core.exits.merge_flops`).
Embedding lookups, the pooler and the head are the same for every method and left out.

`encoder_flops` counts live tokens only (the work the method needs); `computed_flops` also
counts the padding a batch layout makes the hardware compute; `counted_flops` is the
independent check by `torch.utils.flop_counter.FlopCounterMode`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import scored_layers
from tsdtp.core.exits import TokenExit, merge_flops
from tsdtp.core.pruned_model import PrunedModel


@dataclass(frozen=True)
class EncoderShape:
    """The sizes the FLOPs depend on."""

    hidden: int
    intermediate: int
    num_layers: int
    d_task: int


def encoder_shape(wrapper: PrunedModel) -> EncoderShape:
    """The FLOPs-relevant sizes of a pruning wrapper's encoder and scorers."""
    adapter = wrapper.adapter
    return EncoderShape(adapter.hidden_size, adapter.intermediate_size, adapter.num_layers, wrapper.pruning.d_task)


def linear_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one layer's projections and feed-forward on `n` tokens (elementwise)."""
    n = n.double()
    return 8 * n * shape.hidden * shape.hidden + 4 * n * shape.hidden * shape.intermediate


def attention_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one layer's attention scores and mixing over `n` tokens (elementwise)."""
    n = n.double()
    return 4 * n * n * shape.hidden


def layer_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one encoder layer on `n` live tokens (elementwise over a tensor of counts)."""
    return linear_flops(n, shape) + attention_flops(n, shape)


def scorer_projection_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of the scorer's two projections (W and phi) of `n` tokens."""
    return 4 * n.double() * shape.hidden * shape.d_task


def scorer_attention_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of the scorer's attention logits over `n` tokens."""
    n = n.double()
    return 2 * n * n * shape.d_task


def scorer_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of the task-specific scorer on `n` live tokens."""
    return scorer_projection_flops(n, shape) + scorer_attention_flops(n, shape)


@dataclass(frozen=True)
class FlopsReport:
    """Totals over a set of examples, and the ratios against dense."""

    dense: float
    layers: float
    scorer: float
    merging: float = 0.0

    @property
    def total(self) -> float:
        """Pruned encoder FLOPs including the scorer (and the merging, under the `merge` exit mode)."""
        return self.layers + self.scorer + self.merging

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


def method_layers(pruning: PruningConfig, num_layers: int) -> tuple[tuple[int, ...], int]:
    """The layers whose scorer runs under `pruning`, and how many encoder passes it makes."""
    if pruning.spec.masks:
        return (0,), 2
    return (scored_layers(pruning, num_layers) if pruning.uses_scorer else ()), 1


def method_flops(tokens_per_layer: torch.Tensor, shape: EncoderShape, pruning: PruningConfig) -> FlopsReport:
    """`encoder_flops` with the scorer layers and passes of `pruning`'s method."""
    layers, passes = method_layers(pruning, shape.num_layers)
    report = encoder_flops(tokens_per_layer, shape, layers, passes=passes)
    if pruning.exit_mode != TokenExit.MERGE or not pruning.prunes:
        return report
    merging = sum(float(merge_flops(tokens_per_layer[:, layer], shape.hidden).sum())
                  for layer in pruning.resolved_prune_layers(shape.num_layers))
    return FlopsReport(report.dense, report.layers, report.scorer, merging)


def computed_flops(tokens_per_layer: torch.Tensor, shape: EncoderShape, scored: tuple[int, ...], passes: int = 1,
                   packed: bool = False) -> float:
    """FLOPs one batch really costs, padding included; `tokens_per_layer` is that batch's [B, L].

    Padded layouts run every row of layer l at the batch's widest live row. Packed layouts
    (`tsdtp.core.packing`) run the projections, feed-forward and scorer projections on live
    tokens only; attention and the scorer's attention still see the padded block.
    """
    rows = tokens_per_layer.shape[0]
    width = tokens_per_layer.max(dim=0).values
    projected = tokens_per_layer if packed else width.expand_as(tokens_per_layer)
    total = float(linear_flops(projected, shape).sum() + rows * attention_flops(width, shape).sum()) * passes
    for layer in scored:
        total += float(scorer_projection_flops(projected[:, layer], shape).sum())
        total += float(rows * scorer_attention_flops(width[layer], shape))
    return total


def _cpu_sdpa_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args: object,
                    out_shape: object = None, **kwargs: object) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def counted_flops(forward: Callable[[], object]) -> int:
    """FLOPs that `FlopCounterMode` counts while `forward()` runs.

    Its registry lacks the CPU flash-attention kernel that SDPA dispatches to on CPU; the
    same formula as the CUDA SDPA kernels is added for it.
    """
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        forward()
    return int(counter.get_total_flops())
