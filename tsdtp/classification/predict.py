"""Predictions on one's own text: `load_run(path).predict(texts)`.

    import tsdtp
    run = tsdtp.load_run("runs/sst2-ts-dtp-k1")
    for p in run.predict(["a gorgeous, witty movie", "an ugly, pointless mess"], k=0.5):
        print(p.label, p.confidence, p.keep_counts, p.kept_tokens[-1])

Each `Prediction` holds the label, its confidence, every class probability and the tokens kept at each
layer. `tsdtp predict` and the explorer (`tsdtp.explorer.session`) are built on this module.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.encoding import EncodedSplit, collate, encode_texts
from tsdtp.classification.evaluate import predict_batch
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.prediction import Prediction
from tsdtp.core.config import PruningConfig
from tsdtp.core.flops import encoder_shape, method_flops
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.glue_tasks import TASKS, get_task
from tsdtp.hub import load_tokenizer

DISPLAY_LABELS: dict[str, tuple[str, ...]] = {"sst2": ("negative", "positive")}
"""Readable class names where a task's own label names are bare numbers."""


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' load report and progress bars (restored afterwards)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass(frozen=True)
class Predictor:
    """A classifier ready to label new text: its model and tokenizer, class names, input fields and token limit.

    title: one line saying what the model is (run directory, task, trained method).
    text_fields: the task's inputs, e.g. ("sentence",) or, for a pair task, ("question", "sentence").
    """

    model: PrunedClassifier
    tokenizer: PreTrainedTokenizerBase
    title: str
    label_names: tuple[str, ...]
    text_fields: tuple[str, ...]
    max_length: int

    @property
    def pruning(self) -> PruningConfig:
        """The pruning setting predictions start from: the one the run was trained with."""
        return self.model.pruning

    def pruning_with(self, **overrides: Any) -> PruningConfig:
        """`pruning` changed by the given settings (None: unchanged), by `PruningConfig.with_overrides`."""
        return self.pruning.with_overrides({name: value for name, value in overrides.items() if value is not None})

    def predict(self, texts: str | Sequence[str], pairs: str | Sequence[str | None] | None = None, *,
                k: float | None = None, method: str | None = None, gamma: float | None = None,
                sources: Sequence[str] | None = None, **settings: Any) -> list[Prediction]:
        """One `Prediction` per text: label, confidence, class probabilities and the tokens kept at each layer.

        texts: the inputs (a single string is one input). pairs: for a sentence-pair task such as QNLI, the
        second text of each input (a list as long as `texts`); a single-text task takes none.
        k, method, gamma and any other `PruningConfig` field (`prune_layers=(1, 2)`, ...) change the trained
        pruning setting, under the rules of `PruningConfig.with_overrides`.
        sources: how errors name each input (default "input 1", "input 2", ...).

        Each input runs on its own, so its result does not depend on the others. A text longer than the
        model's token limit is truncated to the limit: its `Prediction.truncated` is True, `input_tokens`
        gives the length before truncation and a note says so. Raises ConfigError, naming the input, for an
        empty text, a pair task's input without its second text, or a second text for a single-text task;
        and for a pruning setting out of range.
        """
        pruning = self.pruning_with(k=k, method=method, gamma=gamma, **settings)
        return [self.run(item, pruning) for item in checked_inputs(texts, pairs, self.text_fields, sources)]

    @torch.no_grad()
    def run(self, texts: tuple[str, ...], pruning: PruningConfig) -> Prediction:
        """One input (a text, or a text and its pair) under `pruning`, without `predict`'s checks of the input.

        The model's own pruning setting and mode are restored afterwards.
        """
        model, tokenizer = self.model, self.tokenizer
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ids, types = encode_texts(tokenizer, [texts], self.max_length)
        batch = collate(EncodedSplit(ids, types, [0], [texts]), [0], tokenizer.pad_token_id)
        previous, was_training = model.pruning, model.training
        model.pruning = pruning
        model.eval()
        try:
            generator = torch.Generator().manual_seed(pruning.seed)
            logits, per_layer, trace = predict_batch(model, batch, record_trace=True, generator=generator)
            flops = method_flops(per_layer, encoder_shape(model), pruning)
            special = model.adapter.special_mask(batch["input_ids"])[0]
        finally:
            model.pruning = previous
            model.train(was_training)
        assert trace is not None
        return Prediction(
            texts=texts,
            pruning=pruning,
            tokens=tuple(tokenizer.convert_ids_to_tokens(ids[0])),
            special=tuple(bool(x) for x in special),
            keep=tuple(tuple(bool(x) for x in row) for row in trace[0]),
            tokens_per_layer=tuple(int(x) for x in per_layer[0]),
            label_names=self.label_names,
            probs=tuple(float(p) for p in logits[0].softmax(dim=-1)),
            flops_ratio=flops.ratio,
            input_tokens=len(tokenizer(*texts, truncation=False, verbose=False)["input_ids"]),
            notes=tuple(str(warning.message) for warning in caught),
        )


def checked_inputs(texts: str | Sequence[str], pairs: str | Sequence[str | None] | None,
                   text_fields: tuple[str, ...], sources: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """Each input as a text or a (text, pair) tuple for a model reading `text_fields`; ConfigError names a bad one."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    pairs = [None] * len(texts) if pairs is None else [pairs] if isinstance(pairs, str) else list(pairs)
    sources = [f"input {number}" for number in range(1, len(texts) + 1)] if sources is None else list(sources)
    if not len(texts) == len(pairs) == len(sources):
        raise ConfigError(f"got {len(texts)} text(s) but {len(pairs)} pair(s) and {len(sources)} source name(s): "
                          "give one of each per input")
    return [_checked(text, pair, text_fields, source) for text, pair, source in zip(texts, pairs, sources)]


def _checked(text: Any, pair: Any, fields: tuple[str, ...], source: str) -> tuple[str, ...]:
    """(text,) or (text, pair), or a ConfigError naming `source`."""
    for part, what in ((text, "text"), (pair, "second text")):
        if part is not None and not isinstance(part, str):
            raise ConfigError(f"{source}: the {what} must be a string, not {type(part).__name__}")
    if text is None or not text.strip():
        raise ConfigError(f"{source} is empty: expected a {fields[0]} to classify")
    if len(fields) == 1:
        if pair is not None:
            raise ConfigError(f"{source} has a second text, but this model reads a single {fields[0]}")
        return (text,)
    if pair is None:
        raise ConfigError(f"{source} has no {fields[1]}: this model reads pairs ({fields[0]} + {fields[1]}); "
                          "give the second text in `pairs`, or as text<TAB>pair on the command line")
    if not pair.strip():
        raise ConfigError(f"{source}: the {fields[1]} is empty")
    return (text, pair)


def _refuse_translation_run(run_dir: Path) -> None:
    """A CheckpointError pointing to `tsdtp mt-eval` when `run_dir` holds a translation run."""
    if (run_dir / "checkpoint.pt").is_file():
        return
    try:
        task = json.loads((run_dir / "config.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        task = None
    if (run_dir / "scorers.pt").is_file() or (run_dir / "model").is_dir() or (task and task not in TASKS):
        kind = f"a {task} run" if task and task not in TASKS else "a translation run"
        raise CheckpointError(f"{run_dir} is {kind}, not a classifier: predictions on text read classification "
                              f"runs; evaluate translation runs with `tsdtp mt-eval --run-dir {run_dir}`")


def load_run(run_dir: str | os.PathLike) -> Predictor:
    """The classifier of a trained classification run directory (or its checkpoint.pt), ready to `predict`.

    Raises CheckpointError when the path does not exist, holds no readable checkpoint, or is a translation
    run (those are evaluated with `tsdtp mt-eval`).
    """
    path = Path(run_dir)
    if not path.exists():
        raise CheckpointError(f"run directory {path} does not exist")
    if path.is_dir():
        _refuse_translation_run(path)
    with quiet_loading():
        model, config = load_checkpoint(path)
        tokenizer = load_tokenizer(config.model)
    task = get_task(config.task)
    name = path.name if path.is_dir() else path.parent.name
    return Predictor(model, tokenizer, f"{name} · {task.folder} · trained as {config.pruning.method}",
                     DISPLAY_LABELS.get(task.name, task.label_names), task.text_fields,
                     config.max_length or task.max_length)
