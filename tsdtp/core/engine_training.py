"""Training: nothing is removed; pruning is a soft mask, so gradients reach the scorers and the model.

Soft: a cumulative soft mask `m` enters attention as `log m` on the keys and weights the
queries in the importance averages. Straight-through (the hard phase of training, as in LTP's
second stage): the forward pass is exactly inference's, each layer keeps the tokens the hard
rule keeps and masks the others out of attention (masking equals removal), while gradients
flow through the soft mask of the kept tokens, so the model learns to work with the tokens
inference will really give it. With `removal = "fuse"` the pruned amount of every token goes into one
extra slot after the last token (`tsdtp.core.fusion.with_fusion_slot`); the outputs then have N + 1 columns.

Exit modes (`tsdtp.core.exits`): under `exit` a token's new state is `m * layer(x) + (1 - m) * x`
with `m` its keep mask at the layer's input (soft, or straight-through), so a pruned token is
frozen at its exit state, as in inference; the output keeps every token. Under `merge` the
straight-through phase merges each pruned token into its most similar kept token, exactly as
inference does, and later keys get +log(size); the soft phase prunes as `delete` does (soft
masks have no partial merge).
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
from tsdtp.core.exits import TokenExit, freeze_exited, log_sizes, merge_into_kept
from tsdtp.core.fusion import fuse_into_slot, with_fusion_slot
from tsdtp.core.pruning import hard_keep_dynamic, soft_log_keep
from tsdtp.core.scoring import LayerRequest


@dataclass
class SoftMasks:
    """The soft pruning state carried between layers, every token in place, [B, N] each.

    log_keep: the cumulative log soft mask; importance: the cumulative importance;
    alive: the tokens each layer sees (all valid ones: soft masks never drop a token).
    """

    valid: torch.Tensor
    log_keep: torch.Tensor
    importance: torch.Tensor
    alive: torch.Tensor

    @classmethod
    def start(cls, valid: torch.Tensor) -> SoftMasks:
        """No token masked yet."""
        log_keep = torch.zeros(valid.shape, device=valid.device)
        return cls(valid, log_keep, torch.zeros(valid.shape, device=valid.device), valid)

    def soft_keep(self) -> torch.Tensor:
        """The mean soft mask over the valid tokens, [B]."""
        return (self.valid.float() * self.log_keep.exp()).sum(dim=-1) / self.valid.sum(dim=-1)

    def attention(self, neg: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The query weights and the additive key bias of the next layer: `m` and `log m`."""
        return self.valid.float() * self.log_keep.exp(), torch.where(self.valid, self.log_keep, neg)

    def prune(self, config: PruningConfig, step: int, special: torch.Tensor, weight: torch.Tensor) -> None:
        """Multiply in pruning step `step`'s soft keep mask (the hard rule's sigmoid) on the candidates."""
        candidates = self.valid & ~special
        log_keep = soft_log_keep(self.importance, weight * candidates, config.k_at(step), config.temperature)
        self.log_keep = self.log_keep + torch.where(candidates, log_keep, 0.0)

    def output_log_keep(self, neg: float) -> torch.Tensor:
        """The cumulative log soft mask after the last layer."""
        return self.log_keep

    def kept(self) -> torch.Tensor:
        """How much of each token is kept [B, N]: the cumulative soft mask (0 for padding)."""
        return self.valid.float() * self.log_keep.exp()

    def fuse(self, hidden: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
        """Merge the amounts `removed` [B, N] into the fusion slot (the last column); returns the hidden states."""
        hidden, self.importance, filled = fuse_into_slot(hidden, self.importance, self.valid[:, -1], removed)
        self.valid = torch.cat([self.valid[:, :-1], filled[:, None]], dim=1)
        self.alive = torch.cat([self.alive[:, :-1], filled[:, None]], dim=1)
        return hidden


class StraightThroughMasks(SoftMasks):
    """Hard keep decisions forward, soft-mask gradients backward; `alive` is what the hard rule keeps."""

    def _straight_through(self, neg: float) -> torch.Tensor:
        """0 in value (the float minimum for pruned tokens), carrying the soft mask's gradient."""
        return torch.where(self.alive, self.log_keep - self.log_keep.detach(), neg)

    def attention(self, neg: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The query weights (1 for kept tokens) and the straight-through key bias."""
        return self.alive.float(), self._straight_through(neg)

    def prune(self, config: PruningConfig, step: int, special: torch.Tensor, weight: torch.Tensor) -> None:
        """The soft mask as in soft training, and the hard rule applied to the tokens still alive."""
        super().prune(config, step, special, weight)
        self.alive = hard_keep_dynamic(self.importance, self.alive & ~special, self.alive, config.k_at(step))

    def output_log_keep(self, neg: float) -> torch.Tensor:
        """The straight-through log mask after the last layer."""
        return self._straight_through(neg)

    def kept(self) -> torch.Tensor:
        """Which tokens are kept [B, N], as 1 and 0."""
        return self.alive.float()


def run_training(adapter: LayerAdapter, scorers: nn.ModuleList, config: PruningConfig, embeddings: torch.Tensor,
                 valid: torch.Tensor, special: torch.Tensor, *, straight_through: bool,
                 record_trace: bool = False) -> EngineOutput:
    """Run every layer with the soft (or straight-through) masks of `config`; see `tsdtp.core.engine.run_layers`."""
    plan = LayerPlan.of(config, adapter.num_layers)
    length = valid.shape[1]
    special = special & valid
    fusing = config.fuses and bool(plan.prune_layers)
    if fusing:
        embeddings, valid, special = with_fusion_slot(embeddings, valid, special)
    masks = (StraightThroughMasks if straight_through else SoftMasks).start(valid)
    features = embeddings if config.task_features == "embeddings" else None
    positions = start_positions(valid)
    record = LayerRecord.start(valid[:, :length], plan.num_layers, record_trace)
    soft_keep, prune_scores, prune_candidates = [], [], []
    hidden = embeddings
    mode = TokenExit(config.exit_mode)
    sizes = torch.ones(valid.shape, device=valid.device) if mode is TokenExit.MERGE and straight_through else None
    neg = torch.finfo(hidden.dtype).min
    readout = readout_weight(adapter, masks.valid) if config.reads_out and plan.scored else None
    for index in range(plan.num_layers):
        record.add(index, positions[:, :length], masks.alive[:, :length], counted=masks.alive)
        soft_keep.append(masks.soft_keep())
        weight, key_bias = masks.attention(neg)
        if sizes is not None:
            key_bias = key_bias + log_sizes(sizes)
        layer_input = hidden
        queries = readout if readout is not None else weight
        hidden, received = adapter.layer(index, hidden, LayerRequest(key_bias, index in plan.scored, queries),
                                         positions=positions)
        if mode is TokenExit.EXIT:
            hidden = freeze_exited(hidden, layer_input, key_bias)
        if received is not None:
            source = features if features is not None else layer_input
            masks.importance = add_layer_importance(masks.importance, config, scorers[index], index, received,
                                                    queries, source, key_bias)
        if index in plan.prune_layers:
            prune_scores.append(masks.importance[:, :length])
            prune_candidates.append((masks.alive & ~special)[:, :length])
            before = masks.kept() if fusing else None
            alive = masks.alive
            masks.prune(config, plan.prune_layers.index(index), special, weight)
            if before is not None:
                hidden = masks.fuse(hidden, before - masks.kept())
            if sizes is not None:
                hidden, sizes = merge_into_kept(hidden, sizes, alive, masks.alive)
    importance = None
    if plan.scored:
        importance = mean_importance(masks.importance, (masks.valid & ~special).float() * masks.log_keep.exp())
    return EngineOutput(hidden, masks.valid, positions, record.tokens_per_layer(), record.trace,
                        torch.stack(soft_keep, dim=1), importance, masks.output_log_keep(neg), prune_scores,
                        prune_candidates, None if sizes is None else log_sizes(sizes))
