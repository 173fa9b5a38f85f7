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
    readout_weight,
    start_positions,
)
from tsdtp.core.exits import ExitState
from tsdtp.core.fusion import fuse_pruned
from tsdtp.core.packing import TokenLayout
from tsdtp.core.pruning import gather_kept, hard_keep_count, hard_keep_dynamic, linear_keep_schedule
from tsdtp.core.regions import KEEP, PACKING, region
from tsdtp.core.scoring import LayerRequest
from tsdtp.errors import ConfigError


@dataclass
class LiveTokens:
    """The tokens still alive between layers.

    hidden: [B, n, d], or packed [T, d] when `layout` says where its tokens sit.
    valid, special, positions, importance: [B, n] (live slot, never pruned, original position,
        cumulative importance).
    features: the embeddings, in the layout of `hidden`, when the task scorer reads them.
    exits: what becomes of the removed tokens (`tsdtp.core.exits`: deleted, kept for the output, merged).
    anchored: every row has a live special token, so no keep decision can empty a row.
    fused: [B, n], each row's fused token (`removal = "fuse"`, `tsdtp.core.fusion`); None when dropping.
    """

    hidden: torch.Tensor
    valid: torch.Tensor
    special: torch.Tensor
    positions: torch.Tensor
    importance: torch.Tensor
    features: torch.Tensor | None
    layout: TokenLayout | None
    exits: ExitState
    anchored: bool
    fused: torch.Tensor | None = None

    @classmethod
    def start(cls, config: PruningConfig, embeddings: torch.Tensor, valid: torch.Tensor, special: torch.Tensor,
              packed: bool) -> LiveTokens:
        """Every valid token of the batch, packed or padded."""
        with region(PACKING):
            layout = TokenLayout.from_valid(valid) if packed else None
            hidden = layout.pack(embeddings) if layout is not None else embeddings
        features = hidden if config.task_features == "embeddings" else None
        importance = torch.zeros(valid.shape, device=valid.device)
        special = special & valid
        fused = torch.zeros_like(valid) if config.fuses else None
        exits = ExitState.start(config.exit_mode, embeddings, valid)
        return cls(hidden, valid, special, start_positions(valid), importance, features, layout, exits,
                   bool(special.any(dim=-1).all()), fused)

    def fuse(self, keep: torch.Tensor) -> torch.Tensor:
        """Turn what `keep` [B, n] prunes into each row's fused token (`fuse_pruned`); the keep mask with it."""
        assert self.fused is not None
        self.hidden, self.importance, keep, self.fused = fuse_pruned(self.hidden, self.importance, self.valid, keep,
                                                                     self.fused, self.layout)
        self.special = self.special | self.fused
        return keep

    @property
    def full(self) -> bool:
        """Packed with no padding slot (always so at batch size 1): no key bias, no query weights, no re-padding."""
        return self.layout is not None and self.layout.full

    def request(self, scored: bool, cls_only: bool = False, readout: torch.Tensor | None = None) -> LayerRequest:
        """What the next layer call needs: the key bias (log sizes when merging, `ExitState.key_bias`) and query
        weights, none of them when nothing is padding (the key bias still, when merging). `readout` [B, n]: the
        query weights of `queries` 'readout', given whether or not there is padding."""
        query_weight = readout
        if scored and readout is None and not self.full:
            query_weight = self.valid.float()
        if self.full and self.exits.sizes is None:
            return LayerRequest(None, scored, None, cls_only)
        key_bias = self.exits.key_bias(self.valid, torch.finfo(self.hidden.dtype).min)
        return LayerRequest(key_bias, scored, query_weight, cls_only)

    def prune(self, config: PruningConfig, schedule: torch.Tensor | None, step: int,
              generator: torch.Generator | None) -> None:
        """Pruning step `step`, in one go: decide which candidates stay (`_hard_keep`) and remove the others."""
        candidates = self.valid & ~self.special
        keep = _hard_keep(config, self.importance, candidates, self.valid, schedule, step, generator,
                          rescue=not self.anchored)
        self.remove(self.fuse(keep) if self.fused is not None else keep)

    def remove(self, keep: torch.Tensor) -> None:
        """Keep only the tokens `keep` [B, n], each row's survivors moved to the front (the others exit as
        `exits` says)."""
        self.hidden = self.exits.record_removal(self.hidden, self.layout, self.valid, self.positions, keep)
        if self.fused is not None:
            _, (self.fused,) = gather_kept(keep, self.fused)
        if self.full and keep.shape[0] == 1:
            self._remove_from_one_row(keep[0])
            return
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

    def _remove_from_one_row(self, kept: torch.Tensor) -> None:
        """Batch size 1: select the survivors `kept` [n] in order; the row stays full, so nothing is re-padded."""
        index = kept.nonzero().squeeze(1)
        self.hidden = self.hidden.index_select(0, index)
        self.features = self.features.index_select(0, index) if self.features is not None else None
        self.special, self.positions, self.importance = (
            x.index_select(1, index) for x in (self.special, self.positions, self.importance))
        self.valid = self.valid[:, :index.shape[0]]
        self.layout = TokenLayout(self.valid)

    def padded_hidden(self) -> torch.Tensor:
        """The hidden states as a `[B, n, d]` block."""
        if self.layout is None:
            return self.hidden
        with region(PACKING):
            return self.layout.pad(self.hidden)


def run_inference(adapter: LayerAdapter, scorers: nn.ModuleList, config: PruningConfig, embeddings: torch.Tensor,
                  valid: torch.Tensor, special: torch.Tensor, *, packed: bool, record_trace: bool = False,
                  generator: torch.Generator | None = None, cls_only_last_layer: bool = False) -> EngineOutput:
    """Run every layer, removing the tokens the hard rule of `config` prunes; see `tsdtp.core.engine.run_layers`.

    `cls_only_last_layer`: the last layer runs [CLS] (each row's first token) as its only query,
    and the output holds that token only: all a [CLS] classifier reads (ConfigError when the last
    layer is scored, as its importance needs every query). Otherwise the output is what the exit mode
    leaves (`tsdtp.core.exits.ExitState.output`).
    """
    plan = LayerPlan.of(config, adapter.num_layers)
    last = plan.num_layers - 1
    if cls_only_last_layer and last in plan.scored:
        raise ConfigError(f"cls_only_last_layer: the last layer ({last}) is scored for pruning after it, which "
                          "needs every token as a query; prune after earlier layers only")
    live = LiveTokens.start(config, embeddings, valid, special, packed)
    schedule = _keep_counts(config, plan.prune_layers, live.valid & ~live.special)
    record = LayerRecord.start(valid, plan.num_layers, record_trace)
    for index in range(plan.num_layers):
        record.add(index, live.positions, live.valid if live.fused is None else live.valid & ~live.fused, live.valid)
        scored = index in plan.scored
        readout = readout_weight(adapter, live.valid) if scored and config.reads_out else None
        request = live.request(scored, cls_only_last_layer and index == last, readout)
        layer_input = live.hidden
        live.hidden, received = adapter.layer(index, live.hidden, request, layout=live.layout,
                                              positions=live.positions)
        if received is not None:
            live.importance = add_layer_importance(
                live.importance, config, scorers[index], index, received, request.query_weight,
                live.features if live.features is not None else layer_input, request.key_bias, live.layout)
        if index in plan.prune_layers:
            with region(KEEP, index):
                live.prune(config, schedule, plan.prune_layers.index(index), generator)
    importance = mean_importance(live.importance, (live.valid & ~live.special).float()) if plan.scored else None
    if cls_only_last_layer:
        return EngineOutput(live.hidden[:, None], live.valid[:, :1], live.positions[:, :1],
                            record.tokens_per_layer(), record.trace, mean_importance=importance)
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
               schedule: torch.Tensor | None, step: int, generator: torch.Generator | None, rescue: bool
               ) -> torch.Tensor:
    """The tokens to keep after pruning step `step`: the dynamic threshold, or the scheduled count."""
    if not config.spec.scheduled:
        return hard_keep_dynamic(importance, candidates, valid, config.k_at(step), rescue)
    assert schedule is not None
    scores = importance
    if config.spec.random_scores:
        scores = torch.rand(importance.shape, generator=generator, device=importance.device)
    return hard_keep_count(scores, candidates, valid, schedule[step], rescue)
