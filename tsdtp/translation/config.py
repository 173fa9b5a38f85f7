"""`MTConfig`: one English-to-German training run (model, data, optimisation, pruning).

`model="scratch"` trains a Marian-architecture model and its tokenizer from scratch on the
local corpora (the offline case); any other value is a hub id or a local `save_pretrained`
folder of a pretrained `MarianMTModel` (e.g. `Helsinki-NLP/opus-mt-en-de`), fine-tuned as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tsdtp.core.config import PruningConfig
from tsdtp.core.settings import Settings, setting
from tsdtp.errors import ConfigError

SCRATCH = "scratch"
"""The `model` value that trains a new Marian model and tokenizer."""

TRAIN_CORPORA: tuple[str, ...] = ("multi30k", "news-dev", "wmt16-train")
"""Corpora that may be trained on (`wmt16-train` only from the hub)."""

MT_PRUNING_DEFAULTS: dict[str, Any] = {"d_task": 32, "keep_target": 0.65, "exit_mode": "exit"}
"""Pruning defaults for translation: a narrow scorer (its FLOPs count against a small d_model), a
keep budget that puts the encoder FLOPs ratio below 0.7, and early exit (a pruned source token keeps
its last state for the decoder, `tsdtp.core.exits`)."""


def translation_pruning(pruning: PruningConfig, num_layers: int) -> PruningConfig:
    """`pruning` with the encoder's default pruning layers filled in: every layer after the first.

    Unlike a [CLS] classifier, the last layer is included: what it removes, the decoder's
    cross-attention never sees, at every generation step.
    """
    if pruning.prune_layers is not None:
        return pruning
    return pruning.replace(prune_layers=tuple(range(1, num_layers)))


@dataclass(frozen=True)
class MTConfig(Settings):
    """One translation run. Architecture fields apply to `model="scratch"` only (the help text of each field says
    more); `hard_ratio` is LTP's hard second stage: the model learns to translate from the tokens inference keeps.
    """

    LABEL: ClassVar[str] = "translation"

    task: str = setting("wmt16", choices=("wmt16",), flag=False, help="translation task")
    model: str = setting(SCRATCH, help="'scratch' (train model and tokenizer here), a hub id such as "
                                       "Helsinki-NLP/opus-mt-en-de, or a model folder")
    train_corpora: tuple[str, ...] = setting(("multi30k",), choices=TRAIN_CORPORA, flag="corpora",
                                             help="comma-separated training corpora")
    pruning: PruningConfig = setting(factory=PruningConfig, help="pruning settings")
    vocab_size: int = setting(8000, low=256, high=64000, help="sentencepiece vocabulary size")
    d_model: int = setting(256, low=8, help="model width (divisible by attention_heads)")
    encoder_layers: int = setting(6, low=1, high=48, help="encoder layers")
    decoder_layers: int = setting(3, low=1, high=48, help="decoder layers")
    attention_heads: int = setting(4, low=1, help="attention heads")
    ffn_dim: int = setting(1024, low=1, help="feed-forward width")
    dropout: float = setting(0.1, low=0.0, high=1.0, high_open=True, help="dropout probability")
    activation: str = setting("relu", choices=("relu", "gelu", "swish"), help="feed-forward activation")
    epochs: float = setting(10.0, low=0.0, high=100.0, low_open=True, help="training epochs (fractions allowed)")
    max_tokens: int = setting(2500, low=16, high=1_000_000,
                              help="padded tokens per batch on its longer side (sentences x longest source or "
                                   "target), from length-sorted groups")
    lr: float = setting(5e-4, low=0.0, high=1.0, low_open=True, high_open=True, help="learning rate of the model")
    scorer_lr: float = setting(1e-3, low=0.0, high=1.0, low_open=True, high_open=True,
                               help="learning rate of the task scorers")
    weight_decay: float = setting(0.0001, low=0.0, high=1.0, high_open=True, help="AdamW weight decay")
    warmup_ratio: float = setting(0.1, low=0.0, high=1.0, high_open=True,
                                  help="fraction of steps with a linear learning-rate warm-up")
    label_smoothing: float = setting(0.1, low=0.0, high=1.0, high_open=True, help="label smoothing")
    max_source_length: int = setting(256, low=4, high=1024, help="longer source sentences are truncated")
    max_target_length: int = setting(256, low=4, high=1024, help="longer target sentences are truncated")
    max_train_samples: int | None = setting(None, low=1, help="train on the first this-many pairs (default: all)")
    val_samples: int = setting(500, low=0, help="validation pairs decoded greedily for BLEU after each epoch")
    eval_batch_size: int = setting(64, low=1, high=4096, help="sentences per validation batch")
    seed: int = setting(0, help="seed of initialisation and data order")
    init_from: str | None = setting(None, help="start from this translation run's model and tokenizer")
    save_every: int = setting(200, low=1, help="steps between resumable checkpoints")
    hard_ratio: float = setting(0.0, low=0.0, high=1.0,
                                help="last fraction of steps run with hard keep decisions forward and soft-mask "
                                     "gradients backward (straight-through)")
    distill_weight: float = setting(0.0, low=0.0, high=1.0, omit_default=True,
                                    help="weight a of word-level distillation: loss = (1 - a) CE + a T^2 KL(teacher "
                                         "|| model) over the target tokens, the teacher a dense translation run")
    distill_temperature: float = setting(1.0, low=0.0, high=100.0, low_open=True, omit_default=True,
                                         help="softmax temperature T of both distributions in the distillation KL")
    teacher: str | None = setting(None, omit_default=True,
                                  help="dense translation run to distil from (default: the --init-from run)")

    def check(self) -> None:
        """Rules that join fields: model and corpora given, heads divide the width, batches fit a sentence, and
        a pruning method is trained from a trained model."""
        _require(bool(self.model and self.model.strip()), "model is empty; expected 'scratch', a hub id or a folder")
        _require(len(self.train_corpora) > 0, "train_corpora is empty; expected e.g. ('multi30k',)")
        _require(len(set(self.train_corpora)) == len(self.train_corpora), "train_corpora has duplicates")
        _require(self.d_model % self.attention_heads == 0,
                 f"d_model ({self.d_model}) must be divisible by attention_heads ({self.attention_heads})")
        _require(self.max_tokens >= self.max_source_length and self.max_tokens >= self.max_target_length,
                 "max_tokens must be at least max_source_length and max_target_length (one sentence per batch)")
        self.pruning.check_trainable()
        _require(not self.pruning.spec.prunes or self.model != SCRATCH or self.init_from is not None,
                 "a pruning method is fine-tuned from a trained model: give --init-from <dense run dir> "
                 "(or a pretrained --model)")
        _require(self.init_from is None or self.model == SCRATCH,
                 "give either --init-from (a run of this workbench) or a pretrained --model, not both")
        _require(self.distill_weight == 0 or self.teacher_run is not None,
                 "distillation needs a teacher: give --teacher <dense run dir> or --init-from")
        _require(not self.pruning.reads_out, "queries 'readout' needs a model whose head reads one token; a "
                                             "translation encoder is read whole by the decoder")

    @property
    def teacher_run(self) -> str | None:
        """The run distilled from: `teacher`, else `init_from`."""
        return self.teacher if self.teacher is not None else self.init_from

    @property
    def scratch(self) -> bool:
        """Whether the model and tokenizer are trained here from nothing."""
        return self.model == SCRATCH and self.init_from is None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
