"""Method specs for `tsdtp bench` and `tsdtp profile`: parse them, and bind them to loaded models.

A method is written `METHOD[:key=value...][@RUN_DIR]`:
    dense                  transformers' own forward of the run's weights (the reference)
    none                   the tsdtp engine with pruning off (packed batches, no pruning)
    run                    the run's own trained pruning settings; `run:k=0.5` changes k
    ts-dtp:k=0.5           any method of `tsdtp.core.config.METHODS`, from the run's settings
    general-dtp@runs/x     the weights of another run directory
Options: k, gamma, prune_layers and keep_schedule (values separated by '/'), task_features,
topk_final_keep, seed. Task-agnostic methods get gamma 0 unless it is given.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.evaluate import predict_batch
from tsdtp.classification.model import PrunedClassifier
from tsdtp.core.config import METHODS, PruningConfig
from tsdtp.errors import ConfigError

DENSE, RUN = "dense", "run"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split("/") if x)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("/") if x)


OPTION_PARSERS: dict[str, Callable[[str], Any]] = {
    "k": float, "gamma": float, "prune_layers": _ints, "keep_schedule": _floats, "task_features": str,
    "topk_final_keep": float, "seed": int,
}


@dataclass(frozen=True)
class MethodRequest:
    """One parsed entry of `--methods`."""

    method: str
    options: tuple[tuple[str, Any], ...]
    run_dir: str | None


def parse_method(text: str) -> MethodRequest:
    """`METHOD[:key=value...][@RUN_DIR]` -> MethodRequest; unknown methods or options fail clearly."""
    head, _, run_dir = text.strip().partition("@")
    method, *options = head.split(":")
    if method not in (DENSE, RUN, *METHODS):
        raise ConfigError(f"unknown method {method!r} in {text!r}; expected dense, run or one of "
                          f"{', '.join(METHODS)}")
    parsed = [_parse_option(option, text) for option in options]
    if method == DENSE and parsed:
        raise ConfigError(f"{text!r}: dense takes no options")
    return MethodRequest(method, tuple(parsed), run_dir.strip() or None)


def _parse_option(option: str, text: str) -> tuple[str, Any]:
    """`key=value` of the method `text` -> (key, parsed value)."""
    key, sep, value = option.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in OPTION_PARSERS:
        raise ConfigError(f"bad option {option!r} in {text!r}; expected key=value with a key from "
                          f"{', '.join(OPTION_PARSERS)}")
    try:
        return key, OPTION_PARSERS[key](value)
    except ValueError:
        raise ConfigError(f"bad value {value!r} for {key} in {text!r}") from None


def parse_methods(text: str) -> list[MethodRequest]:
    """A comma-separated `--methods` list."""
    requests = [parse_method(part) for part in text.split(",") if part.strip()]
    if not requests:
        raise ConfigError("no methods to benchmark")
    return requests


def resolve_pruning(request: MethodRequest, trained: PruningConfig) -> PruningConfig | None:
    """The pruning a request means for a run trained with `trained` (None for dense)."""
    if request.method == DENSE:
        return None
    changes = dict(request.options)
    if request.method != RUN:
        changes["method"] = request.method
    return trained.with_overrides(changes)


@dataclass(frozen=True)
class BenchSpec:
    """One method to measure: its weights and how it prunes.

    source: a run directory or a loaded classifier. pruning: the pruning to apply, or None
    for the library's own dense forward (`transformers`) of the same weights.
    label: the row's name (derived from the pruning when empty); run_dir: where the weights
    came from, for the table.
    """

    source: str | Path | PrunedClassifier
    pruning: PruningConfig | None
    label: str = ""
    run_dir: str = ""


def spec_label(pruning: PruningConfig | None) -> str:
    """A short row name: `dense`, `none`, `ts-dtp k=1 g=0.5`, `topk final=0.3`, ..."""
    if pruning is None:
        return DENSE
    if not pruning.spec.prunes:
        return pruning.method
    if pruning.spec.scheduled:
        schedule = ("/".join(f"{r:g}" for r in pruning.keep_schedule) if pruning.keep_schedule
                    else f"final={pruning.topk_final_keep:g}")
        return f"{pruning.method} {schedule}"
    label = f"{pruning.method} k={pruning.k:g}"
    return f"{label} g={pruning.gamma:g}" if pruning.uses_scorer else label


@dataclass
class BoundMethod:
    """A spec bound to its loaded model: call it on a batch for (logits, tokens per layer).

    cls_only_last_layer: the last layer runs [CLS] as its only query (dense included).
    """

    label: str
    pruning: PruningConfig | None
    model: PrunedClassifier
    run_dir: str
    generator: torch.Generator
    cls_only_last_layer: bool = False

    @property
    def method(self) -> str:
        """The method's name in the tables: `dense` for the library's forward, else the pruning method."""
        return DENSE if self.pruning is None else self.pruning.method

    @property
    def impl(self) -> str:
        """Which code path runs: the library's forward, the packed engine, or padded masking."""
        if self.pruning is None:
            return "transformers"
        if self.pruning.spec.masks:
            return "tsdtp padded, 2 passes"
        return "tsdtp packed"

    @property
    def flops_pruning(self) -> PruningConfig:
        """The pruning whose FLOPs this method costs (dense is method none)."""
        return self.pruning or PruningConfig(d_task=self.model.pruning.d_task)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, C] and live tokens at each layer's input [B, L] of one forward on `batch`."""
        if self.pruning is None:
            logits = self.model.adapter.dense_logits(batch, self.cls_only_last_layer)
            tokens = batch["attention_mask"].sum(dim=-1, keepdim=True).expand(-1, self.model.adapter.num_layers)
            return logits, tokens
        self.model.pruning = self.pruning
        self.model.cls_only_last_layer = self.cls_only_last_layer
        logits, tokens, _ = predict_batch(self.model, batch, generator=self.generator)
        return logits, tokens


CLS_ONLY_SUFFIX = " +cls-only"
"""Added to the label of every method measured with a [CLS]-only last layer, so its rows stay apart."""


def bind_specs(specs: Sequence[BenchSpec], device: torch.device, dtype: torch.dtype,
               cls_only_last_layer: bool = False) -> list[BoundMethod]:
    """Load each distinct source once, on the device and in the dtype, and label the specs.

    `cls_only_last_layer` runs every method's last layer for [CLS] alone (ConfigError for
    reference-masking, whose two full passes have no such option).
    """
    models: dict[object, PrunedClassifier] = {}
    methods = []
    for spec in specs:
        if cls_only_last_layer and spec.pruning is not None and spec.pruning.spec.masks:
            raise ConfigError(f"cls_only_last_layer does not apply to {spec.pruning.method}: drop it from the methods")
        key = id(spec.source) if isinstance(spec.source, PrunedClassifier) else str(Path(spec.source).resolve())
        if key not in models:
            models[key] = _placed(spec.source, device, dtype)
        run_dir = spec.run_dir or ("" if isinstance(spec.source, PrunedClassifier) else str(spec.source))
        seed = spec.pruning.seed if spec.pruning is not None else 0
        label = (spec.label or spec_label(spec.pruning)) + (CLS_ONLY_SUFFIX if cls_only_last_layer else "")
        methods.append(BoundMethod(label, spec.pruning, models[key], run_dir,
                                   torch.Generator(device=device).manual_seed(seed), cls_only_last_layer))
    labels = [m.label for m in methods]
    for method in methods:
        if labels.count(method.label) > 1:
            method.label = f"{method.label} [{Path(method.run_dir).name or id(method.model)}]"
    if len({m.label for m in methods}) != len(methods):
        raise ConfigError(f"benchmark specs repeat the same method and weights: {labels}")
    return methods


def _placed(source: str | Path | PrunedClassifier, device: torch.device, dtype: torch.dtype) -> PrunedClassifier:
    """The classifier of `source` in eval mode on `device` in `dtype` (a copy when it must move)."""
    model = source if isinstance(source, PrunedClassifier) else load_checkpoint(source)[0]
    parameter = next(model.parameters())
    if parameter.device != device or parameter.dtype != dtype:
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    return model.eval()
