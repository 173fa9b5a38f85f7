"""`LlmTrainConfig`: one decoder-only classification run (task, model, LoRA, optimisation, pruning), validated on
construction.

The base model's weights stay frozen: LoRA adapters on the attention projections, the classification head
and the task scorers are what trains (`tsdtp.llm.classifier_model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tsdtp.core.config import PruningConfig
from tsdtp.core.settings import Settings, setting
from tsdtp.errors import ConfigError
from tsdtp.gguf_models import DEFAULT_LLM
from tsdtp.glue_tasks import TASKS
from tsdtp.llm.classifier_few_shot import MIN_FEW_SHOT_TOKENS

LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The Llama linears a LoRA adapter may wrap."""


@dataclass(frozen=True)
class LlmTrainConfig(Settings):
    """One LoRA fine-tuning run of a Llama-architecture classifier (the help text of each field says more)."""

    LABEL: ClassVar[str] = "LLM training"

    task: str = setting("sst2", choices=tuple(TASKS), help="GLUE task")
    model: str = setting(DEFAULT_LLM, help="hub id or local folder of the Llama-architecture model")
    pruning: PruningConfig = setting(factory=PruningConfig, help="pruning settings")
    epochs: float = setting(1.0, low=0.0, high=100.0, low_open=True, help="training epochs (fractions allowed)")
    batch_size: int = setting(8, low=1, high=4096, help="training batch size")
    eval_batch_size: int = setting(16, low=1, high=4096, help="evaluation batch size")
    lr: float = setting(2e-4, low=0.0, high=1.0, low_open=True, high_open=True,
                        help="learning rate of the LoRA adapters and the head")
    scorer_lr: float = setting(1e-3, low=0.0, high=1.0, low_open=True, high_open=True,
                               help="learning rate of the task scorers")
    weight_decay: float = setting(0.0, low=0.0, high=1.0, high_open=True, help="AdamW weight decay")
    warmup_ratio: float = setting(0.06, low=0.0, high=1.0, high_open=True,
                                  help="fraction of steps with a linear learning-rate warm-up")
    max_length: int = setting(256, low=16, high=8192,
                              help="prompt length limit in tokens: a longer text is cut at its end to fit, the "
                                   "instruction and the answer prefix kept (at most the model's context)")
    max_train_samples: int | None = setting(None, low=1, help="train on a seeded subset of this many examples "
                                                              "(default: all)")
    max_eval_samples: int | None = setting(None, low=1, help="evaluate on the first this-many examples "
                                                             "(default: all)")
    seed: int = setting(0, help="seed of initialisation and data order")
    selection_fraction: float = setting(0.0, low=0.0, high=1.0, high_open=True, omit_default=True,
                                        help="fraction of the training split held out, by a fixed seed, before "
                                             "max_train_samples, to choose settings on (llm-eval --split selection)")
    init_from: str | None = setting(None, help="start from this LLM run's adapters and head")
    save_every: int = setting(200, low=1, help="steps between resumable checkpoints")
    hard_ratio: float = setting(0.0, low=0.0, high=1.0,
                                help="last fraction of steps run with hard keep decisions forward and soft-mask "
                                     "gradients backward (straight-through)")
    teacher: str | None = setting(None, omit_default=True,
                                  help="distil from this finished dense LLM run of the same task, model and max_length "
                                       "(its logits on the training prompts, cached once in its folder)")
    distill_weight: float = setting(0.5, low=0.0, high=1.0, omit_default=True,
                                    help="with a teacher: loss = (1 - w) * CE + w * T^2 * KL(teacher || student)")
    distill_temperature: float = setting(2.0, low=0.0, high=100.0, low_open=True, omit_default=True,
                                         help="temperature T of the logit distillation")
    few_shot_tokens: int = setting(0, low=0, high=8192, omit_default=True,
                                   help="SST-2: train and evaluate on few-shot prompts, demonstrations from the "
                                        "training part before each review up to this many tokens (a training "
                                        "prompt's budget drawn from a quarter of it up; tsdtp.llm."
                                        "classifier_few_shot); 0: one review per prompt")
    lora_rank: int = setting(8, low=1, high=1024, help="rank of the LoRA adapters")
    lora_alpha: float = setting(16.0, low=0.0, low_open=True, help="LoRA scaling numerator (scale = alpha / rank)")
    lora_dropout: float = setting(0.0, low=0.0, high=1.0, high_open=True, help="dropout on the LoRA input")
    lora_targets: tuple[str, ...] = setting(("q_proj", "k_proj", "v_proj", "o_proj"), choices=LORA_TARGETS,
                                            help="comma-separated Llama linears that get a LoRA adapter")

    def check(self) -> None:
        """Only a method with its own fine-tuning recipe is trained; LoRA wraps at least one linear."""
        self.pruning.check_trainable()
        if self.few_shot_tokens:
            if self.task != "sst2":
                raise ConfigError(f"few_shot_tokens builds SST-2 few-shot prompts; task {self.task!r} has none")
            if not MIN_FEW_SHOT_TOKENS <= self.few_shot_tokens <= self.max_length:
                raise ConfigError(f"few_shot_tokens must be between {MIN_FEW_SHOT_TOKENS} and max_length "
                                  f"({self.max_length}); got {self.few_shot_tokens}")
        if not self.lora_targets:
            raise ConfigError(f"lora_targets is empty; expected some of {', '.join(LORA_TARGETS)}")
