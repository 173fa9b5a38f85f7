"""Distillation from a dense teacher: its logits (Hinton et al.) and its token ranking (ToP's ranking distillation).

Pure losses over tensors; the task packages supply the teacher's outputs (`tsdtp.classification.teacher`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def logit_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """`T^2 * KL(softmax(teacher / T) || softmax(student / T))`, the mean over the batch of [B, C] logits.

    Scaled by T^2 so its gradients keep their size as T changes; 0 exactly when the logits agree.
    """
    student_log = F.log_softmax(student / temperature, dim=-1)
    teacher_log = F.log_softmax(teacher.to(student.dtype) / temperature, dim=-1)
    return temperature ** 2 * F.kl_div(student_log, teacher_log, log_target=True, reduction="batchmean")


def distilled_task_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor, weight: float,
                        temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    """`(1 - weight) * CE + weight * logit_distillation`, and its parts `ce` and `kl` as floats."""
    ce = F.cross_entropy(logits, labels)
    kl = logit_distillation(logits, teacher, temperature)
    return (1 - weight) * ce + weight * kl, {"ce": float(ce.detach()), "kl": float(kl.detach())}


def standardized(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Per-row z-scores of `scores` [B, n] over the `candidates`; a large negative number elsewhere.

    Ranking is scale-free, so student importance (attention plus task attention, summed over layers) and
    teacher attention are compared on one scale.
    """
    weight = candidates.to(scores.dtype)
    count = weight.sum(dim=-1, keepdim=True).clamp_min(1.0)
    mean = (weight * scores).sum(dim=-1, keepdim=True) / count
    std = ((weight * (scores - mean) ** 2).sum(dim=-1, keepdim=True) / count + 1e-12).sqrt()
    return ((scores - mean) / std).masked_fill(~candidates, -1e4)


def rank_distillation(layer_scores: Sequence[torch.Tensor], layer_candidates: Sequence[torch.Tensor],
                      teacher_scores: torch.Tensor) -> torch.Tensor:
    """A listwise ranking loss: KL between the teacher's and each layer's top-one distributions, averaged.

    Each pruning layer's importance `layer_scores[i]` [B, n] over its candidates `layer_candidates[i]`
    (the tokens it may prune) is pulled toward the ranking of `teacher_scores` [B, n] (the teacher's
    final-layer attention received, as ToP): `KL(softmax(z_teacher) || softmax(z_student))` over the
    candidates (ListNet), per example with at least two candidates, averaged over examples and layers.
    """
    losses = []
    for scores, candidates in zip(layer_scores, layer_candidates, strict=True):
        ranked = candidates.sum(dim=-1) >= 2
        if not ranked.any():
            continue
        student = F.log_softmax(standardized(scores[ranked], candidates[ranked]), dim=-1)
        teacher = F.log_softmax(standardized(teacher_scores[ranked].to(scores.dtype), candidates[ranked]), dim=-1)
        pointwise = teacher.exp() * (teacher - student)
        losses.append(pointwise.masked_fill(~candidates[ranked], 0.0).sum(dim=-1).mean())
    if not losses:
        return torch.zeros((), device=teacher_scores.device)
    return torch.stack(losses).mean()
