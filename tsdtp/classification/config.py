"""`TrainConfig`: one classification fine-tuning run (task, model, optimisation, pruning), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tsdtp.core.config import PruningConfig
from tsdtp.core.settings import Settings, setting
from tsdtp.hub import DEFAULT_MODEL


@dataclass(frozen=True)
class TrainConfig(Settings):
    """One fine-tuning run: task, model, optimisation and data budget (the help text of each field says more)."""

    LABEL: ClassVar[str] = "training"

    task: str = setting("sst2", help="GLUE task")
    model: str = setting(DEFAULT_MODEL, help="hub id or local folder of the BERT-family encoder")
    pruning: PruningConfig = setting(factory=PruningConfig, help="pruning settings")
    epochs: float = setting(1.0, low=0.0, high=100.0, low_open=True, help="training epochs (fractions allowed)")
    batch_size: int = setting(32, low=1, high=4096, help="training batch size")
    eval_batch_size: int = setting(64, low=1, high=4096, help="evaluation batch size")
    lr: float = setting(5e-5, low=0.0, high=1.0, low_open=True, high_open=True, help="learning rate of the model")
    scorer_lr: float = setting(1e-3, low=0.0, high=1.0, low_open=True, high_open=True,
                               help="learning rate of the task scorers")
    weight_decay: float = setting(0.01, low=0.0, high=1.0, high_open=True, help="AdamW weight decay")
    warmup_ratio: float = setting(0.06, low=0.0, high=1.0, high_open=True,
                                  help="fraction of steps with a linear learning-rate warm-up")
    max_length: int | None = setting(None, low=8, high=4096, help="truncate inputs to this many tokens "
                                                                  "(default: the task's)")
    max_train_samples: int | None = setting(None, low=1, help="train on the first this-many examples (default: all)")
    max_eval_samples: int | None = setting(None, low=1, help="evaluate on the first this-many examples "
                                                             "(default: all)")
    seed: int = setting(0, help="seed of initialisation and data order")
    init_from: str | None = setting(None, help="start from this run's fine-tuned encoder and head")
    save_every: int = setting(500, low=1, help="steps between resumable checkpoints")
    hard_ratio: float = setting(0.0, low=0.0, high=1.0,
                                help="last fraction of steps run with hard keep decisions forward and soft-mask "
                                     "gradients backward (straight-through, as MTConfig.hard_ratio)")

    def check(self) -> None:
        """Only a method with its own fine-tuning recipe is trained."""
        self.pruning.check_trainable()
