"""The training loss of a classification run: cross-entropy, distillation from the teacher, the pruning terms.

Without a teacher: `CE + lambda_aux * L_aux + lambda_keep * L_keep` (`PrunedClassifier.loss`). With one:
`(1 - w) * CE + w * T^2 * KL(teacher || student)` (`distill_weight` w, `distill_temperature` T), plus
`rank_weight` times the ranking distillation of every pruning layer (`tsdtp.core.distillation`), plus the
same pruning terms. Every method trains with the same objective, the dense one included.
"""

from __future__ import annotations

import torch

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.model import ClassifierOutput, PrunedClassifier
from tsdtp.classification.teacher import TeacherBatch
from tsdtp.core.distillation import distilled_task_loss, rank_distillation


def training_loss(model: PrunedClassifier, output: ClassifierOutput, labels: torch.Tensor, config: TrainConfig,
                  teacher: TeacherBatch | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its parts as floats (`ce`: the plain cross-entropy, `kl`, `rank`, `aux`, ...)."""
    if teacher is None:
        return model.loss(output, labels)
    task, parts = distilled_task_loss(output.logits, labels, teacher.logits, config.distill_weight,
                                      config.distill_temperature)
    engine = output.engine
    if config.rank_weight > 0 and engine.prune_scores:
        assert engine.prune_candidates is not None
        rank = rank_distillation(engine.prune_scores, engine.prune_candidates, teacher.attention)
        task = task + config.rank_weight * rank
        parts["rank"] = float(rank.detach())
    loss, penalty_parts = model.add_pruning_penalty(task, engine)
    return loss, {**penalty_parts, **parts}
