"""`TrainConfig`: one classification fine-tuning run (task, model, optimisation, pruning), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tsdtp.core.config import PruningConfig
from tsdtp.core.settings import Settings, setting
from tsdtp.errors import ConfigError
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
    teacher: str | None = setting(None, omit_default=True,
                                  help="distil from this fine-tuned run of the same task and model (its logits, "
                                       "cached once in its folder)")
    distill_weight: float = setting(0.5, low=0.0, high=1.0, omit_default=True,
                                    help="with a teacher: loss = (1 - w) * CE + w * T^2 * KL(teacher || student)")
    distill_temperature: float = setting(2.0, low=0.0, high=100.0, low_open=True, omit_default=True,
                                         help="temperature T of the logit distillation")
    rank_weight: float = setting(0.0, low=0.0, high=100.0, omit_default=True,
                                 help="weight of the ranking distillation (ToP): each pruning layer's importance "
                                      "ranking pulled toward the teacher's final-layer attention ranking")
    selection_fraction: float = setting(0.0, low=0.0, high=0.5, omit_default=True,
                                        help="fraction of the training set held out (fixed seed) to choose "
                                             "settings on; never trained on")

    def check(self) -> None:
        """Only a method with its own fine-tuning recipe is trained; ranking distillation needs a teacher."""
        self.pruning.check_trainable()
        if self.rank_weight > 0 and self.teacher is None:
            raise ConfigError("rank_weight > 0 distils the teacher's attention ranking: give a teacher run")
