"""Validated pruning settings (`PruningConfig`) and the method names.

Settings are frozen dataclasses checked on construction, so a bad value fails before any
model is loaded or any step is trained.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from tsdtp.errors import ConfigError

METHODS: tuple[str, ...] = (
    "none",
    "ts-dtp",
    "general-dtp",
    "general-dtp-posthoc",
    "topk",
    "random",
    "reference-masking",
)
"""Every pruning method of the harness (see METHOD.md, "Baselines")."""

TRAINABLE_METHODS: tuple[str, ...] = ("none", "ts-dtp", "general-dtp")
"""Methods with their own fine-tuning recipe; the others are applied to a dense model."""

TASK_AGNOSTIC_METHODS: tuple[str, ...] = ("general-dtp", "general-dtp-posthoc", "topk", "random")
"""Methods that ignore the task scorer: gamma defaults to 0 for them wherever a command sets it."""

K_MIN, K_MAX = -3.0, 1e6
"""The threshold width k. k >= K_MAX (or `math.inf`) switches pruning off."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class PruningConfig:
    """How tokens are scored and removed.

    k: threshold width in `tau = mean(S) - k * std(S)`; smaller k prunes more.
    gamma: weight of the task-specific attention in the hybrid importance (0 for General DTP).
    d_task: width of the task-specific scorer.
    prune_layers: 0-based layers after which tokens are removed; None means every layer
        after the first except the last (removing tokens after the last layer saves nothing
        for a [CLS] classifier).
    temperature: soft-mask temperature, in units of the per-example std of S.
    lambda_aux, lambda_keep: weights of the auxiliary and keep-budget losses.
    keep_target: the fraction of token-layers the keep-budget loss pulls toward.
    task_features: "hidden" (phi_l reads the layer's own hidden states) or "embeddings"
        (the reference notebook's choice).
    topk_final_keep: keep ratio at the last pruning layer of the linear top-k schedule.
    keep_schedule: explicit per-pruning-layer keep fractions for `topk` and `random`.
    seed: seed of the `random` baseline.
    """

    method: str = "none"
    k: float = 1.0
    gamma: float = 0.5
    d_task: int = 128
    prune_layers: tuple[int, ...] | None = None
    temperature: float = 0.25
    lambda_aux: float = 0.1
    lambda_keep: float = 2.0
    keep_target: float = 0.5
    task_features: str = "hidden"
    topk_final_keep: float = 0.3
    keep_schedule: tuple[float, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.method in METHODS, f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        _check(not math.isnan(self.k) and self.k >= K_MIN, f"k must be a number >= {K_MIN} (got {self.k})")
        _check(0.0 <= self.gamma <= 100.0, f"gamma must be in [0, 100] (got {self.gamma})")
        _check(self.method != "general-dtp" or self.gamma == 0.0,
               "general-dtp is task-agnostic: gamma must be 0 (use ts-dtp for gamma > 0)")
        _check(1 <= self.d_task <= 4096, f"d_task must be in [1, 4096] (got {self.d_task})")
        _check(0.0 < self.temperature <= 100.0, f"temperature must be in (0, 100] (got {self.temperature})")
        _check(0.0 <= self.lambda_aux <= 100.0, f"lambda_aux must be in [0, 100] (got {self.lambda_aux})")
        _check(0.0 <= self.lambda_keep <= 100.0, f"lambda_keep must be in [0, 100] (got {self.lambda_keep})")
        _check(0.0 < self.keep_target <= 1.0, f"keep_target must be in (0, 1] (got {self.keep_target})")
        _check(self.task_features in ("hidden", "embeddings"),
               f"task_features must be 'hidden' or 'embeddings' (got {self.task_features!r})")
        _check(0.0 < self.topk_final_keep <= 1.0, f"topk_final_keep must be in (0, 1] (got {self.topk_final_keep})")
        if self.prune_layers is not None:
            _check(len(set(self.prune_layers)) == len(self.prune_layers) and all(l >= 0 for l in self.prune_layers),
                   f"prune_layers must be distinct non-negative layer indices (got {self.prune_layers})")
        if self.keep_schedule is not None:
            _check(all(0.0 < r <= 1.0 for r in self.keep_schedule),
                   f"keep_schedule fractions must be in (0, 1] (got {self.keep_schedule})")

    @property
    def prunes(self) -> bool:
        """Whether this configuration removes any token at all."""
        return self.method != "none" and self.k < K_MAX

    @property
    def uses_scorer(self) -> bool:
        """Whether the task-specific scorer contributes to the importance."""
        return self.method in ("ts-dtp", "reference-masking") and self.gamma > 0

    def resolved_prune_layers(self, num_layers: int) -> tuple[int, ...]:
        """The 0-based layers after which tokens are removed, checked against the model depth."""
        if self.prune_layers is None:
            return tuple(range(1, num_layers - 1))
        bad = [l for l in self.prune_layers if l >= num_layers]
        _check(not bad, f"prune_layers {bad} out of range for a {num_layers}-layer model")
        return tuple(sorted(self.prune_layers))

    def replace(self, **changes: Any) -> PruningConfig:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)
