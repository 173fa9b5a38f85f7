"""Inference: run a layer on the live tokens, score them, decide, and physically remove the pruned ones.

The survivors' hidden states are gathered into a shorter tensor, so every later layer runs on
fewer tokens. Packed (`tsdtp.core.packing`): the hidden states hold the live tokens only, so
projections and feed-forward skip the padding, and rows are re-padded, to the longest live
row, just for attention. Padded: the whole batch stays a `[B, n, d]` block, re-padded after
each removal (the reference the packed path is checked against).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine_common import (
    EngineOutput,
    LayerAdapter,
    LayerPlan,
    LayerRecord,
    add_layer_importance,
    mean_importance,
    start_positions,
)
from tsdtp.core.exits import ExitState
from tsdtp.core.packing import TokenLayout
from tsdtp.core.pruning import gather_kept, hard_keep_count, hard_keep_dynamic, linear_keep_schedule
from tsdtp.core.regions import KEEP, PACKING, region


@dataclass
class LiveTokens:
    """The tokens still alive between layers.

    hidden: [B, n, d], or packed [T, d] when `layout` says where its tokens sit.
    valid, special, positions, importance: [B, n] (live slot, never pruned, original position,
        cumulative importance).
    features: the embeddings, in the layout of `hidden`, when the task scorer reads them.
    exits: what becomes of the removed tokens (`tsdtp.core.exits`: deleted, kept for the output, merged).
    """

    hidden: torch.Tensor
    valid: torch.Tensor
    special: torch.Tensor
    positions: torch.Tensor
    importance: torch.Tensor
    features: torch.Tensor | None
    layout: TokenLayout | None
    exits: ExitState

    @classmethod
    def start(cls, config: PruningConfig, embeddings: torch.Tensor, valid: torch.Tensor, special: torch.Tensor,
              packed: bool) -> LiveTokens:
        """Every valid token of the batch, packed or padded."""
        with region(PACKING):
            layout = TokenLayout.from_valid(valid) if packed else None
            hidden = layout.pack(embeddings) if layout is not None else embeddings
        features = hidden if config.task_features == "embeddings" else None
        importance = torch.zeros(valid.shape, device=valid.device)
        exits = ExitState.start(config.exit_mode, embeddings, valid)
        return cls(hidden, valid, special & valid, start_positions(valid), importance, features, layout, exits)

    def remove(self, keep: torch.Tensor) -> None:
        """Keep only the tokens `keep` [B, n], each row's survivors moved to the front (the others exit as
        `exits` says)."""
        self.hidden = self.exits.record_removal(self.hidden, self.layout, self.valid, self.positions, keep)
        if self.layout is not None:
            self.valid, (self.special, self.positions, self.importance) = gather_kept(
                keep, self.special, self.positions, self.importance)
            self.layout, survivors = self.layout.select(keep, self.valid)
            self.hidden = self.hidden.index_select(0, survivors)
            self.features = self.features.index_select(0, survivors) if self.features is not None else None
            return
        carried = [self.hidden, self.special, self.positions, self.importance]
        self.valid, gathered = gather_kept(keep, *carried, *([self.features] if self.features is not None else []))
        self.hidden, self.special, self.positions, self.importance = gathered[:4]
        self.features = gathered[4] if self.features is not None else None

    def padded_hidden(self) -> torch.Tensor:
        """The hidden states as a `[B, n, d]` block."""
        if self.layout is None:
            return self.hidden
        with region(PACKING):
            return self.layout.pad(self.hidden)


def run_inference(adapter: LayerAdapter, scorers: nn.ModuleList, config: PruningConfig, embeddings: torch.Tensor,
                  valid: torch.Tensor, special: torch.Tensor, *, packed: bool, record_trace: bool = False,
                  generator: torch.Generator | None = None) -> EngineOutput:
    """Run every layer, removing the tokens the hard rule of `config` prunes; see `tsdtp.core.engine.run_layers`."""
    plan = LayerPlan.of(config, adapter.num_layers)
    live = LiveTokens.start(config, embeddings, valid, special, packed)
    schedule = _keep_counts(config, plan.prune_layers, live.valid & ~live.special)
    record = LayerRecord.start(valid, plan.num_layers, record_trace)
    neg = torch.finfo(live.hidden.dtype).min
    for index in range(plan.num_layers):
        record.add(index, live.positions, live.valid)
        weight = live.valid.float()
        key_bias = live.exits.key_bias(live.valid, neg)
        layer_input = live.hidden
        live.hidden, probs = adapter.layer(index, live.hidden, key_bias, need_probs=index in plan.scored,
                                           layout=live.layout)
        if probs is not None:
            source = live.features if live.features is not None else layer_input
            live.importance = add_layer_importance(live.importance, config, scorers[index], index, probs, weight,
                                                   source, key_bias, live.layout)
        if index in plan.prune_layers:
            candidates = live.valid & ~live.special
            with region(KEEP, index):
                keep = _hard_keep(config, live.importance, candidates, live.valid, schedule,
                                  plan.prune_layers.index(index), generator)
                live.remove(keep)
    importance = mean_importance(live.importance, (live.valid & ~live.special).float()) if plan.scored else None
    hidden, valid, positions, log_sizes = live.exits.output(live.padded_hidden(), live.valid, live.positions)
    return EngineOutput(hidden, valid, positions, record.tokens_per_layer(), record.trace,
                        mean_importance=importance, log_sizes=log_sizes)


def _keep_counts(config: PruningConfig, prune_layers: tuple[int, ...], candidates: torch.Tensor
                 ) -> torch.Tensor | None:
    """For top-k and random: candidates to keep after each pruning layer, [P, B]."""
    if not config.spec.scheduled or not prune_layers:
        return None
    fractions = config.keep_schedule or linear_keep_schedule(len(prune_layers), config.topk_final_keep)
    if len(fractions) != len(prune_layers):
        raise ValueError(f"keep_schedule has {len(fractions)} entries for {len(prune_layers)} pruning layers")
    initial = candidates.sum(dim=-1).float()
    return torch.stack([(fraction * initial).round().clamp_min(1).long() for fraction in fractions])


def _hard_keep(config: PruningConfig, importance: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor,
               schedule: torch.Tensor | None, step: int, generator: torch.Generator | None) -> torch.Tensor:
    """The tokens to keep after pruning step `step`: the dynamic threshold, or the scheduled count."""
    if not config.spec.scheduled:
        return hard_keep_dynamic(importance, candidates, valid, config.k)
    assert schedule is not None
    scores = importance
    if config.spec.random_scores:
        scores = torch.rand(importance.shape, generator=generator, device=importance.device)
    return hard_keep_count(scores, candidates, valid, schedule[step])
