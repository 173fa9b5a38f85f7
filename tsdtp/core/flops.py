"""Analytic FLOPs of an encoder pass from the live tokens each layer saw (multiply-add = 2).

Per layer with n live tokens, hidden d and FFN width f:
    projections (Q, K, V, O)  8 n d^2          (4 n d^2 + 4 n d d_kv with grouped-query keys and values of width d_kv)
    feed-forward              4 n d f          (24 n d^2 in total when f = 4d; 6 n d f for a gated MLP's 3 matrices)
    attention scores + mix    4 n^2 d          (counted in full, as the masked attention kernel computes it)
The task scorer adds 4 n d d_task + 2 n^2 d_task on every layer it scores; the `merge` exit mode
adds its similarities and weighted sums after every pruning layer (`tsdtp.core.exits.merge_flops`).
A last layer that runs [CLS] as its only query (`cls_only_last_layer`) costs 4 n d^2 (keys and values
of every token) + 4 d^2 + 4 d f (query, output and feed-forward of one token) + 4 n d (its attention).
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
    """The sizes the FLOPs depend on: `kv_hidden`, the key/value width (None: `hidden`; smaller with
    grouped-query attention), and `ffn_matrices`, 2 (up, down) or 3 (a gated MLP: gate, up, down)."""

    hidden: int
    intermediate: int
    num_layers: int
    d_task: int
    kv_hidden: int | None = None
    ffn_matrices: int = 2


def encoder_shape(wrapper: PrunedModel) -> EncoderShape:
    """The FLOPs-relevant sizes of a pruning wrapper's encoder and scorers."""
    adapter = wrapper.adapter
    return EncoderShape(adapter.hidden_size, adapter.intermediate_size, adapter.num_layers, wrapper.pruning.d_task)


def linear_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one layer's projections and feed-forward on `n` tokens (elementwise)."""
    n = n.double()
    kv_hidden = shape.hidden if shape.kv_hidden is None else shape.kv_hidden
    projections = 4 * n * shape.hidden * (shape.hidden + kv_hidden)
    return projections + 2 * shape.ffn_matrices * n * shape.hidden * shape.intermediate


def attention_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one layer's attention scores and mixing over `n` tokens (elementwise)."""
    n = n.double()
    return 4 * n * n * shape.hidden


def layer_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of one encoder layer on `n` live tokens (elementwise over a tensor of counts)."""
    return linear_flops(n, shape) + attention_flops(n, shape)


def cls_linear_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of the projections and feed-forward of a layer that runs [CLS] as its only query over `n` tokens."""
    d = shape.hidden
    return 4 * n.double() * d * d + 4 * d * d + 4 * d * shape.intermediate


def cls_attention_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of the attention of [CLS] alone over `n` tokens."""
    return 4 * n.double() * shape.hidden


def cls_layer_flops(n: torch.Tensor, shape: EncoderShape) -> torch.Tensor:
    """FLOPs of a layer that runs [CLS] as its only query over `n` tokens (elementwise)."""
    return cls_linear_flops(n, shape) + cls_attention_flops(n, shape)


def layer_costs(tokens_per_layer: torch.Tensor, shape: EncoderShape, cls_only_last_layer: bool = False
                ) -> torch.Tensor:
    """FLOPs of each layer of each example, [B, L], from the live tokens it processed."""
    costs = layer_flops(tokens_per_layer, shape)
    if cls_only_last_layer:
        costs[:, -1] = cls_layer_flops(tokens_per_layer[:, -1], shape)
    return costs


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
                  passes: int = 1, cls_only_last_layer: bool = False) -> FlopsReport:
    """FLOPs for examples whose layer l processed `tokens_per_layer[b, l]` live tokens.

    The dense reference runs every layer on the tokens of layer 0, its last for [CLS] alone too
    when `cls_only_last_layer`. `passes` multiplies the layer cost (2 for the reference
    notebook's run-twice masking).
    """
    unpruned = tokens_per_layer[:, :1].expand_as(tokens_per_layer)
    dense = float(layer_costs(unpruned, shape, cls_only_last_layer).sum())
    layers = float(layer_costs(tokens_per_layer, shape, cls_only_last_layer).sum()) * passes
    scorer = float(sum(scorer_flops(tokens_per_layer[:, l], shape).sum() for l in scored_layers))
    return FlopsReport(dense, layers, scorer)


def method_layers(pruning: PruningConfig, num_layers: int) -> tuple[tuple[int, ...], int]:
    """The layers whose scorer runs under `pruning`, and how many encoder passes it makes."""
    if pruning.spec.masks:
        return (0,), 2
    return (scored_layers(pruning, num_layers) if pruning.uses_scorer else ()), 1


def method_flops(tokens_per_layer: torch.Tensor, shape: EncoderShape, pruning: PruningConfig,
                 cls_only_last_layer: bool = False) -> FlopsReport:
    """`encoder_flops` with the scorer layers and passes of `pruning`'s method."""
    layers, passes = method_layers(pruning, shape.num_layers)
    report = encoder_flops(tokens_per_layer, shape, layers, passes=passes, cls_only_last_layer=cls_only_last_layer)
    if pruning.exit_mode != TokenExit.MERGE or not pruning.prunes:
        return report
    merging = sum(float(merge_flops(tokens_per_layer[:, layer], shape.hidden).sum())
                  for layer in pruning.resolved_prune_layers(shape.num_layers))
    return FlopsReport(report.dense, report.layers, report.scorer, merging)


def computed_flops(tokens_per_layer: torch.Tensor, shape: EncoderShape, scored: tuple[int, ...], passes: int = 1,
                   packed: bool = False, cls_only_last_layer: bool = False) -> float:
    """FLOPs one batch really costs, padding included; `tokens_per_layer` is that batch's [B, L].

    Padded layouts run every row of layer l at the batch's widest live row. Packed layouts
    (`tsdtp.core.packing`) run the projections, feed-forward and scorer projections on live
    tokens only; attention and the scorer's attention still see the padded block. A [CLS]-only
    last layer projects keys and values of the same tokens and runs the rest for one per row.
    """
    rows = tokens_per_layer.shape[0]
    width = tokens_per_layer.max(dim=0).values
    projected = tokens_per_layer if packed else width.expand_as(tokens_per_layer)
    linear = linear_flops(projected, shape)
    attention = rows * attention_flops(width, shape)
    if cls_only_last_layer:
        linear[:, -1] = cls_linear_flops(projected[:, -1], shape)
        attention[-1] = rows * cls_attention_flops(width[-1], shape)
    total = float(linear.sum() + attention.sum()) * passes
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
