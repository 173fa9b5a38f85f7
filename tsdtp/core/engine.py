"""The generic layer loop: run a layer on the live tokens, score them, decide, gather.

In inference (`soft=False`) pruned tokens are physically removed: the hidden states of the
survivors are gathered into a shorter tensor, so every later layer runs on fewer tokens.
Without autograd the hidden states stay packed (`tsdtp.core.packing`): projections and feed-forward
run on the live tokens only and rows are re-padded, to the longest live row, just for
attention; with autograd the whole batch is padded. In training (`soft=True`) nothing is
removed; a cumulative soft mask `m` enters attention as `log m` on the keys and weights the
queries in the importance averages, so gradients reach the scorer and the model.

With `straight_through=True` (the hard phase of training, as in LTP's second stage) the
forward pass is exactly inference's: each layer keeps the tokens the hard rule keeps and the
others are masked out of attention (masking equals removal), while gradients flow through the
soft mask of the kept tokens (a straight-through estimator), so the model learns to work with
the tokens inference will really give it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from tsdtp.core.config import PruningConfig
from tsdtp.core.packing import TokenLayout
from tsdtp.core.pruning import (
    gather_kept,
    hard_keep_count,
    hard_keep_dynamic,
    linear_keep_schedule,
    soft_log_keep,
)
from tsdtp.core.regions import KEEP, PACKING, SCORER, region
from tsdtp.core.scoring import attention_received

DYNAMIC_METHODS = ("ts-dtp", "general-dtp", "general-dtp-posthoc")
SCHEDULED_METHODS = ("topk", "random")


class LayerAdapter(Protocol):
    """What the engine needs from a model family (see `tsdtp.adapters`)."""

    num_layers: int

    def layer(self, index: int, hidden: torch.Tensor, key_bias: torch.Tensor, need_probs: bool,
              layout: TokenLayout | None = None) -> tuple[torch.Tensor, torch.Tensor | None]: ...


@dataclass
class EngineOutput:
    """What one pass through the layers produced.

    hidden, valid: the live tokens after the last layer, [B, n, d] and [B, n].
    positions: original position of each live token, [B, n].
    tokens_per_layer: live tokens each layer processed, per example, [B, L].
    keep_trace: [B, L, N] True where original token j was alive at the input of layer l.
    soft_keep: training only, mean soft mask over valid tokens at each layer's input, [B, L].
    mean_importance: per-example mean cumulative importance of the candidates, [B].
    log_keep: training only, the cumulative log soft mask after the last layer, [B, N] (what a
        decoder's cross-attention must add to its logits to see the same soft pruning); with
        `straight_through`, 0 in value for kept tokens (the float minimum for pruned ones) but
        carrying the soft mask's gradient.
    """

    hidden: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    tokens_per_layer: torch.Tensor
    keep_trace: torch.Tensor | None = None
    soft_keep: torch.Tensor | None = None
    mean_importance: torch.Tensor | None = None
    log_keep: torch.Tensor | None = None


def scored_layers(config: PruningConfig, num_layers: int) -> tuple[int, ...]:
    """Layers whose importance is computed (every layer up to the last pruning layer)."""
    if not config.prunes or config.method == "random":
        return ()
    return tuple(range(max(config.resolved_prune_layers(num_layers), default=-1) + 1))


def run_layers(adapter: LayerAdapter, scorers: nn.ModuleList, config: PruningConfig, embeddings: torch.Tensor,
               valid: torch.Tensor, special: torch.Tensor, *, soft: bool = False, straight_through: bool = False,
               record_trace: bool = False, generator: torch.Generator | None = None) -> EngineOutput:
    """Run every layer with the pruning of `config` and return the surviving tokens.

    embeddings: [B, N, d]; valid: [B, N] (False for padding); special: [B, N] never pruned.
    `straight_through` (with `soft`): hard keep decisions forward, soft-mask gradients backward.
    """
    batch, length = valid.shape
    num_layers = adapter.num_layers
    prune_layers = config.resolved_prune_layers(num_layers) if config.prunes else ()
    scored = scored_layers(config, num_layers)
    if soft and config.method not in ("none", "ts-dtp", "general-dtp"):
        raise ValueError(f"method {config.method!r} has no differentiable (training) form")
    special = special & valid
    with region(PACKING):
        layout = TokenLayout.from_valid(valid) if not soft and not torch.is_grad_enabled() else None
        hidden = layout.pack(embeddings) if layout is not None else embeddings
    features = hidden if config.task_features == "embeddings" else None
    positions = torch.arange(length, device=valid.device).expand(batch, length)
    importance = torch.zeros(batch, length, device=valid.device)
    log_keep = torch.zeros(batch, length, device=valid.device)
    schedule = _keep_counts(config, prune_layers, valid & ~special)
    trace = torch.zeros(batch, num_layers, length, dtype=torch.bool, device=valid.device) if record_trace else None
    tokens, soft_keep = [], []
    neg = torch.finfo(hidden.dtype).min
    alive = valid

    for index in range(num_layers):
        live = alive if soft and straight_through else valid
        tokens.append(live.sum(dim=-1))
        if trace is not None:
            trace[:, index].scatter_(1, positions, live)
        if soft:
            soft_keep.append((valid.float() * log_keep.exp()).sum(dim=-1) / valid.sum(dim=-1))
            if straight_through:
                weight = alive.float()
                key_bias = torch.where(alive, log_keep - log_keep.detach(), neg)
            else:
                weight = valid.float() * log_keep.exp()
                key_bias = torch.where(valid, log_keep, neg)
        else:
            weight = valid.float()
            key_bias = torch.where(valid, 0.0, neg)
        layer_input = hidden
        hidden, probs = adapter.layer(index, hidden, key_bias, need_probs=index in scored, layout=layout)
        if probs is not None:
            with region(SCORER, index):
                score = attention_received(probs, weight)
                if config.uses_scorer:
                    source = features if features is not None else layer_input
                    score = score + config.gamma * scorers[index](source, key_bias, weight, layout=layout)
                importance = importance + score
        if index not in prune_layers:
            continue
        candidates = valid & ~special
        if soft:
            step = soft_log_keep(importance, weight * candidates, config.k, config.temperature)
            log_keep = log_keep + torch.where(candidates, step, 0.0)
            if straight_through:
                alive = hard_keep_dynamic(importance, alive & ~special, alive, config.k)
            continue
        with region(KEEP, index):
            keep = _hard_keep(config, importance, candidates, valid, schedule, prune_layers.index(index), generator)
            if layout is not None:
                valid, (special, positions, importance) = gather_kept(keep, special, positions, importance)
                layout, survivors = layout.select(keep, valid)
                hidden = hidden.index_select(0, survivors)
                features = features.index_select(0, survivors) if features is not None else None
                continue
            carried = [hidden, special, positions, importance] + ([features] if features is not None else [])
            valid, carried = gather_kept(keep, *carried)
            hidden, special, positions, importance = carried[:4]
            features = carried[4] if features is not None else None

    if layout is not None:
        with region(PACKING):
            hidden = layout.pad(hidden)
    mean_importance = None
    if scored:
        weight = (valid & ~special).float() * (log_keep.exp() if soft else 1.0)
        mean_importance = (weight * importance).sum(-1) / weight.sum(-1).clamp_min(1e-9)
    if soft and straight_through:
        log_keep = torch.where(alive, log_keep - log_keep.detach(), neg)
    return EngineOutput(hidden, valid, positions, torch.stack(tokens, dim=1), trace,
                        torch.stack(soft_keep, dim=1) if soft else None, mean_importance,
                        log_keep if soft else None)


def _keep_counts(config: PruningConfig, prune_layers: tuple[int, ...], candidates: torch.Tensor
                 ) -> torch.Tensor | None:
    """For top-k and random: candidates to keep after each pruning layer, [P, B]."""
    if config.method not in SCHEDULED_METHODS or not prune_layers:
        return None
    fractions = config.keep_schedule or linear_keep_schedule(len(prune_layers), config.topk_final_keep)
    if len(fractions) != len(prune_layers):
        raise ValueError(f"keep_schedule has {len(fractions)} entries for {len(prune_layers)} pruning layers")
    initial = candidates.sum(dim=-1).float()
    return torch.stack([(fraction * initial).round().clamp_min(1).long() for fraction in fractions])


def _hard_keep(config: PruningConfig, importance: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor,
               schedule: torch.Tensor | None, step: int, generator: torch.Generator | None) -> torch.Tensor:
    if config.method in DYNAMIC_METHODS:
        return hard_keep_dynamic(importance, candidates, valid, config.k)
    assert schedule is not None
    scores = importance
    if config.method == "random":
        scores = torch.rand(importance.shape, generator=generator, device=importance.device)
    return hard_keep_count(scores, candidates, valid, schedule[step])
