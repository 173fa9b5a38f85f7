"""The pruning terms of the training loss, shared by every model family.

`L = task loss + lambda_aux * L_aux + lambda_keep * L_keep`, where L_aux is the paper's term,
mean |per-example mean importance - batch mean|, and L_keep is
(mean soft keep rate over token-layers - keep_target)^2, the target ramped from 1 over the first
`keep_ramp` of training (`tsdtp.core.schedule`). A method without soft masks (top-k, trained with its
hard rule) has neither term.
"""

from __future__ import annotations

import torch

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineOutput
from tsdtp.core.schedule import ramped_keep_target


def pruning_penalty(engine: EngineOutput, pruning: PruningConfig, progress: float = 1.0
                    ) -> tuple[torch.Tensor | float, dict[str, float]]:
    """`lambda_aux * L_aux + lambda_keep * L_keep` (0.0 when neither applies), and each part as a float.

    `progress` (fraction of training done) sets the ramped keep target; with a ramp it is a part too.
    """
    penalty: torch.Tensor | float = 0.0
    parts: dict[str, float] = {}
    if engine.mean_importance is not None and pruning.lambda_aux > 0 and pruning.spec.differentiable:
        aux = (engine.mean_importance - engine.mean_importance.mean()).abs().mean()
        penalty = penalty + pruning.lambda_aux * aux
        parts["aux"] = float(aux.detach())
    if engine.soft_keep is not None:
        rate = engine.soft_keep.mean()
        target = ramped_keep_target(pruning.keep_target, progress, pruning.keep_ramp)
        keep = (rate - target) ** 2
        penalty = penalty + pruning.lambda_keep * keep
        parts["soft_keep"] = float(rate.detach())
        if pruning.keep_ramp > 0:
            parts["keep_target"] = target
    return penalty, parts
