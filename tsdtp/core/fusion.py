"""Fusing pruned tokens (EViT): what a pruning step removes becomes one extra kept token per example.

The fused token's hidden state is the importance-weighted mean of the tokens merged into it, and its
importance is their summed importance (its weight when later steps merge more tokens into it). It is
never a pruning candidate, so after every pruning step an example keeps the tokens the rule keeps
plus this one. Inference (`fuse_pruned`) turns the slot of the first token pruned into the fused token;
training (`with_fusion_slot`, `fuse_into_slot`) adds one slot after the last token, so masking still
equals removal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tsdtp.core.packing import TokenLayout


def merge_weights(importance: torch.Tensor, merged: torch.Tensor) -> torch.Tensor:
    """Each merged token's weight [B, n]: its importance (clamped at 0); uniform in a row whose merged
    tokens have no importance at all (methods that score nothing)."""
    weight = importance.clamp_min(0.0) * merged
    empty = (weight.sum(dim=-1, keepdim=True) <= 0) & merged.any(dim=-1, keepdim=True)
    return torch.where(empty, merged.to(weight.dtype), weight)


def fuse_pruned(hidden: torch.Tensor, importance: torch.Tensor, valid: torch.Tensor, keep: torch.Tensor,
                fused: torch.Tensor, layout: TokenLayout | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge the tokens `keep` prunes, and the fused token so far, into one kept slot per example.

    hidden: [B, n, d], or packed [T, d] with its `layout`; importance, valid, keep, fused: [B, n]
    (`fused` marks each row's fused token, if it has one). The slot is the row's fused token, else its
    first pruned token. Returns hidden (the slot holding the weighted mean), importance (the slot
    holding the summed importance), keep (with the slot) and the new fused mask.
    """
    merged = (valid & ~keep) | fused
    weight = merge_weights(importance, merged)
    total = weight.sum(dim=-1)
    slot = F.one_hot((merged.long() + fused.long()).argmax(dim=-1), merged.shape[1]).bool()
    slot &= merged.any(dim=-1, keepdim=True)
    if layout is None:
        mean = (weight[..., None] * hidden).sum(dim=1) / total.clamp_min(1e-12)[:, None]
        hidden = torch.where(slot[..., None], mean[:, None, :].to(hidden.dtype), hidden)
    else:
        packed_weight = weight[layout.rows, layout.cols].to(hidden.dtype)
        sums = hidden.new_zeros(valid.shape[0], hidden.shape[-1]).index_add_(0, layout.rows,
                                                                             packed_weight[:, None] * hidden)
        mean = sums / total.clamp_min(1e-12).to(hidden.dtype)[:, None]
        hidden = torch.where(slot[layout.rows, layout.cols][:, None], mean[layout.rows], hidden)
    importance = torch.where(slot, (importance * merged).sum(dim=-1, keepdim=True), importance)
    return hidden, importance, keep | slot, slot


def with_fusion_slot(embeddings: torch.Tensor, valid: torch.Tensor, special: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training's form: the inputs with one empty slot appended (embeddings [B, N+1, d], valid [B, N+1] with
    the slot invalid until a pruning step fills it, special [B, N+1] with the slot special: never pruned)."""
    batch = valid.shape[0]
    slot = torch.zeros(batch, 1, embeddings.shape[-1], dtype=embeddings.dtype, device=embeddings.device)
    column = torch.ones(batch, 1, dtype=torch.bool, device=valid.device)
    return (torch.cat([embeddings, slot], dim=1), torch.cat([valid, ~column], dim=1),
            torch.cat([special, column], dim=1))


def fuse_into_slot(hidden: torch.Tensor, importance: torch.Tensor, present: torch.Tensor, removed: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training's fusion step: merge the amount `removed` [B, N+1] of each token, and the slot's own token where
    `present` [B], into the last slot; returns hidden, importance and which rows now have a fused token [B].

    Training removes nothing, so a token's pruned amount is how much its keep mask fell at this step (the
    soft mask's drop, or 1 for a token the straight-through rule prunes); its weight is that amount times
    its importance.
    """
    amount = torch.cat([removed[:, :-1], present[:, None].to(removed.dtype)], dim=1)
    merged = amount > 0
    weight = merge_weights(importance, merged) * amount
    filled = merged.any(dim=-1)
    mean = (weight[..., None] * hidden).sum(dim=1) / weight.sum(dim=-1).clamp_min(1e-12)[:, None]
    last = torch.where(filled[:, None], mean.to(hidden.dtype), hidden[:, -1])
    mass = torch.where(filled, (amount * importance).sum(dim=-1), importance[:, -1])
    return (torch.cat([hidden[:, :-1], last[:, None]], dim=1),
            torch.cat([importance[:, :-1], mass[:, None]], dim=1), filled)
