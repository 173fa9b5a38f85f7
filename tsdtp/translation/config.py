"""`MTConfig`: one English-to-German training run (model, data, optimisation, pruning).

`model="scratch"` trains a Marian-architecture model and its tokenizer from scratch on the
local corpora (the offline case); any other value is a hub id or a local `save_pretrained`
folder of a pretrained `MarianMTModel` (e.g. `Helsinki-NLP/opus-mt-en-de`), fine-tuned as it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tsdtp.core.config import TRAINABLE_METHODS, PruningConfig
from tsdtp.errors import ConfigError

SCRATCH = "scratch"
"""The `model` value that trains a new Marian model and tokenizer."""

TRAIN_CORPORA: tuple[str, ...] = ("multi30k", "news-dev", "wmt16-train")
"""Corpora that may be trained on (`wmt16-train` only from the hub)."""

MT_PRUNING_DEFAULTS: dict[str, Any] = {"d_task": 32, "keep_target": 0.65}
"""Pruning defaults for translation: a narrow scorer (its FLOPs count against a small d_model) and a
keep budget that puts the encoder FLOPs ratio below 0.7."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def translation_pruning(pruning: PruningConfig, num_layers: int) -> PruningConfig:
    """`pruning` with the encoder's default pruning layers filled in: every layer after the first.

    Unlike a [CLS] classifier, the last layer is included: what it removes, the decoder's
    cross-attention never sees, at every generation step.
    """
    if pruning.prune_layers is not None:
        return pruning
    return pruning.replace(prune_layers=tuple(range(1, num_layers)))


@dataclass(frozen=True)
class MTConfig:
    """One translation run. Architecture fields apply to `model="scratch"` only.

    max_tokens: a batch holds at most this many padded tokens on its longer side
        (sentences x longest source or target), built from length-sorted groups.
    max_source_length, max_target_length: longer sentences are truncated (with a warning).
    val_samples: validation pairs decoded greedily for BLEU after each epoch.
    hard_ratio: the last fraction of training steps run with hard keep decisions forward and
        soft-mask gradients backward (`straight_through`; LTP's hard second stage), so the model
        learns to translate from the tokens inference really keeps.
    """

    task: str = "wmt16"
    model: str = SCRATCH
    train_corpora: tuple[str, ...] = ("multi30k",)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    vocab_size: int = 8000
    d_model: int = 256
    encoder_layers: int = 6
    decoder_layers: int = 3
    attention_heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    activation: str = "relu"
    epochs: float = 10.0
    max_tokens: int = 2500
    lr: float = 5e-4
    scorer_lr: float = 1e-3
    weight_decay: float = 0.0001
    warmup_ratio: float = 0.1
    label_smoothing: float = 0.1
    max_source_length: int = 256
    max_target_length: int = 256
    max_train_samples: int | None = None
    val_samples: int = 500
    eval_batch_size: int = 64
    seed: int = 0
    init_from: str | None = None
    save_every: int = 200
    hard_ratio: float = 0.0

    def __post_init__(self) -> None:
        _check(self.task == "wmt16", f"unknown translation task {self.task!r}; expected 'wmt16'")
        _check(bool(self.model and self.model.strip()), "model is empty; expected 'scratch', a hub id or a folder")
        _check(len(self.train_corpora) > 0, "train_corpora is empty; expected e.g. ('multi30k',)")
        for name in self.train_corpora:
            _check(name in TRAIN_CORPORA, f"unknown training corpus {name!r}; expected some of "
                                          f"{', '.join(TRAIN_CORPORA)}")
        _check(len(set(self.train_corpora)) == len(self.train_corpora), "train_corpora has duplicates")
        _check(256 <= self.vocab_size <= 64000, f"vocab_size must be in [256, 64000] (got {self.vocab_size})")
        _check(self.d_model >= 8 and self.attention_heads >= 1 and self.d_model % self.attention_heads == 0,
               f"d_model ({self.d_model}) must be >= 8 and divisible by attention_heads ({self.attention_heads})")
        _check(1 <= self.encoder_layers <= 48 and 1 <= self.decoder_layers <= 48, "layer counts must be in [1, 48]")
        _check(self.ffn_dim >= 1, f"ffn_dim must be >= 1 (got {self.ffn_dim})")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1) (got {self.dropout})")
        _check(self.activation in ("relu", "gelu", "swish"), f"activation must be relu, gelu or swish "
                                                             f"(got {self.activation!r})")
        _check(0.0 < self.epochs <= 100.0, f"epochs must be in (0, 100] (got {self.epochs})")
        _check(16 <= self.max_tokens <= 1_000_000, f"max_tokens must be in [16, 1e6] (got {self.max_tokens})")
        _check(0.0 < self.lr < 1.0 and 0.0 < self.scorer_lr < 1.0, "learning rates must be in (0, 1)")
        _check(0.0 <= self.weight_decay < 1.0, f"weight_decay must be in [0, 1) (got {self.weight_decay})")
        _check(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        _check(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        for name in ("max_source_length", "max_target_length"):
            value = getattr(self, name)
            _check(4 <= value <= 1024, f"{name} must be in [4, 1024] (got {value})")
        _check(self.max_tokens >= self.max_source_length and self.max_tokens >= self.max_target_length,
               "max_tokens must be at least max_source_length and max_target_length (one sentence per batch)")
        _check(self.max_train_samples is None or self.max_train_samples >= 1,
               f"max_train_samples must be >= 1 (got {self.max_train_samples})")
        _check(self.val_samples >= 0, f"val_samples must be >= 0 (got {self.val_samples})")
        _check(1 <= self.eval_batch_size <= 4096, f"eval_batch_size must be in [1, 4096] (got {self.eval_batch_size})")
        _check(self.save_every >= 1, f"save_every must be >= 1 (got {self.save_every})")
        _check(0.0 <= self.hard_ratio <= 1.0, f"hard_ratio must be in [0, 1] (got {self.hard_ratio})")
        _check(self.pruning.method in TRAINABLE_METHODS,
               f"method {self.pruning.method!r} is applied to a trained model, not trained; "
               f"train one of {', '.join(TRAINABLE_METHODS)} and evaluate with --method {self.pruning.method}")
        _check(self.pruning.method == "none" or self.model != SCRATCH or self.init_from is not None,
               "a pruning method is fine-tuned from a trained model: give --init-from <dense run dir> "
               "(or a pretrained --model)")
        _check(self.init_from is None or self.model == SCRATCH,
               "give either --init-from (a run of this workbench) or a pretrained --model, not both")

    @property
    def scratch(self) -> bool:
        """Whether the model and tokenizer are trained here from nothing."""
        return self.model == SCRATCH and self.init_from is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MTConfig:
        """Rebuild and re-validate a config from `to_dict` output."""
        data = dict(data)
        pruning = dict(data.pop("pruning", {}))
        for key in ("prune_layers", "keep_schedule"):
            if pruning.get(key) is not None:
                pruning[key] = tuple(pruning[key])
        if "train_corpora" in data:
            data["train_corpora"] = tuple(data["train_corpora"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        _check(not unknown, f"unknown translation settings: {', '.join(sorted(unknown))}")
        return cls(pruning=PruningConfig(**pruning), **data)

