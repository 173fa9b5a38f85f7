"""Training schedules of the pruning recipe: the keep-budget target reached gradually (ToP, EViT).

Training starts from a dense model, so the keep-budget loss first asks for nearly every token and
lowers its target linearly to `keep_target` over the first `keep_ramp` of the steps.
"""

from __future__ import annotations


def ramped_keep_target(keep_target: float, progress: float, ramp: float) -> float:
    """The keep-budget target after `progress` (fraction of the training steps done, in [0, 1]).

    1 at the start, falling linearly to `keep_target` at `progress == ramp`, then `keep_target`;
    `ramp == 0` is no ramp (always `keep_target`).
    """
    if ramp <= 0:
        return keep_target
    return 1.0 - (1.0 - keep_target) * min(1.0, max(0.0, progress) / ramp)
