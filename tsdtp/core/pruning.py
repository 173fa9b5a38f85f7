"""Keep decisions and token removal: threshold rules, soft masks, and gather/re-pad.

Pure functions over `[B, n]` tensors of the live tokens of a batch. `candidates` marks the
tokens that may be pruned (live and not special); special tokens and padding never are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_stats(scores: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row weighted mean and (population) std of `scores`, shapes [B, 1]."""
    total = weight.sum(dim=-1, keepdim=True).clamp_min(1e-9)
    mean = (weight * scores).sum(dim=-1, keepdim=True) / total
    var = (weight * (scores - mean) ** 2).sum(dim=-1, keepdim=True) / total
    return mean, (var + 1e-12).sqrt()


def dynamic_threshold(scores: torch.Tensor, weight: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-example threshold `tau = mean - k * std` over the weighted candidates, and std."""
    mean, std = weighted_stats(scores, weight)
    return mean - k * std, std


def hard_keep_dynamic(scores: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor, k: float,
                      rescue: bool = True) -> torch.Tensor:
    """Tokens to keep under the dynamic rule: everything live except candidates below tau.

    `rescue=False` skips `ensure_one_kept`, for callers whose every row has a live non-candidate.
    """
    tau, _ = dynamic_threshold(scores, candidates.to(scores.dtype), k)
    keep = valid & ~(candidates & (scores < tau))
    return ensure_one_kept(keep, scores, valid) if rescue else keep


def soft_log_keep(scores: torch.Tensor, weight: torch.Tensor, k: float, temperature: float) -> torch.Tensor:
    """`log sigmoid((S - tau) / (T * std))`: the log soft keep mask of this layer's rule.

    The temperature is in units of the per-example std of S, so the mask is equally sharp
    for short and long inputs; its 0.5 crossing is exactly the hard threshold.
    """
    tau, std = dynamic_threshold(scores, weight, k)
    return F.logsigmoid((scores - tau) / (temperature * std + 1e-9))


def hard_keep_count(scores: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor,
                    n_keep: torch.Tensor, rescue: bool = True) -> torch.Tensor:
    """Keep the `n_keep[b]` highest-scoring candidates of each row, plus every non-candidate (`rescue`: as above)."""
    ranked = scores.masked_fill(~candidates, float("-inf"))
    order = ranked.argsort(dim=-1, descending=True)
    ranks = torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous()
    rank = torch.empty_like(order).scatter_(1, order, ranks)
    keep = valid & (~candidates | (rank < n_keep[:, None]))
    return ensure_one_kept(keep, scores, valid) if rescue else keep


def ensure_one_kept(keep: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Keep the best live token of any row that would otherwise lose every token."""
    empty = ~keep.any(dim=-1) & valid.any(dim=-1)
    if not empty.any():
        return keep
    best = scores.masked_fill(~valid, float("-inf")).argmax(dim=-1)
    rescue = F.one_hot(best, keep.shape[1]).bool() & empty[:, None]
    return keep | rescue


def gather_kept(keep: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Move each row's kept tokens to the front, in order, and cut to the longest row.

    Returns the new validity mask [B, n'] and every tensor gathered along dim 1.
    """
    counts = keep.sum(dim=-1)
    width = int(counts.max())
    order = (~keep).to(torch.int8).argsort(dim=-1, stable=True)[:, :width]
    valid = torch.arange(width, device=keep.device)[None, :] < counts[:, None]
    gathered = []
    for tensor in tensors:
        index = order.view(*order.shape, *([1] * (tensor.dim() - 2))).expand(-1, -1, *tensor.shape[2:])
        gathered.append(tensor.gather(1, index))
    return valid, gathered


def linear_keep_schedule(num_prune_layers: int, final_keep: float) -> tuple[float, ...]:
    """Keep fractions falling linearly from 1 to `final_keep` over the pruning layers (top-k rule)."""
    return tuple(1.0 - (1.0 - final_keep) * (i + 1) / num_prune_layers for i in range(num_prune_layers))
