"""`TrainConfig`: one classification fine-tuning run (task, model, optimisation, pruning), validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tsdtp.core.config import TRAINABLE_METHODS, PruningConfig, _check
from tsdtp.hub import DEFAULT_MODEL


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run: task, model, optimisation and data budget.

    hard_ratio: the last fraction of training steps run with hard keep decisions forward and
        soft-mask gradients backward (`straight_through`, as `MTConfig.hard_ratio`).
    """

    task: str = "sst2"
    model: str = DEFAULT_MODEL
    pruning: PruningConfig = field(default_factory=PruningConfig)
    epochs: float = 1.0
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 5e-5
    scorer_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    seed: int = 0
    init_from: str | None = None
    save_every: int = 500
    hard_ratio: float = 0.0

    def __post_init__(self) -> None:
        _check(0.0 < self.epochs <= 100.0, f"epochs must be in (0, 100] (got {self.epochs})")
        _check(1 <= self.batch_size <= 4096, f"batch_size must be in [1, 4096] (got {self.batch_size})")
        _check(1 <= self.eval_batch_size <= 4096, f"eval_batch_size must be in [1, 4096] (got {self.eval_batch_size})")
        _check(0.0 < self.lr < 1.0 and 0.0 < self.scorer_lr < 1.0, "learning rates must be in (0, 1)")
        _check(0.0 <= self.weight_decay < 1.0, f"weight_decay must be in [0, 1) (got {self.weight_decay})")
        _check(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        _check(self.max_length is None or 8 <= self.max_length <= 4096,
               f"max_length must be in [8, 4096] (got {self.max_length})")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"{name} must be >= 1 (got {value})")
        _check(self.save_every >= 1, f"save_every must be >= 1 (got {self.save_every})")
        _check(0.0 <= self.hard_ratio <= 1.0, f"hard_ratio must be in [0, 1] (got {self.hard_ratio})")
        _check(self.pruning.method in TRAINABLE_METHODS,
               f"method {self.pruning.method!r} is applied to a trained model, not trained; "
               f"train one of {', '.join(TRAINABLE_METHODS)} and evaluate with --method {self.pruning.method}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild and re-validate a config from `to_dict` output."""
        data = dict(data)
        pruning = dict(data.pop("pruning", {}))
        for key in ("prune_layers", "keep_schedule"):
            if pruning.get(key) is not None:
                pruning[key] = tuple(pruning[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        _check(not unknown, f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(pruning=PruningConfig(**pruning), **data)
