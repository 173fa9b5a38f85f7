"""Selection without peeking: a held-out part of the training data on which settings are chosen.

With `TrainConfig.selection_fraction > 0`, that fraction of the task's training split is set aside
before anything else (before `max_train_samples`), by a fixed seed (`SELECTION_SEED`), never by the
run's seed: every method, keep target and seed of a task holds out the same examples and trains on
none of them, the dense teacher included when it is trained with the same fraction. Settings
(k, keep target, ...) are chosen by accuracy on this split (`tsdtp eval --split selection`); the
evaluation split is then evaluated for the chosen settings only.

QNLI has no offline train split: its training data is 80% of dev (`tsdtp.glue_tasks`),
so its selection split is carved from that 80% and the reported "qnli (dev split)" 20% stays untouched.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from tsdtp.data_files import labelled, tag_of_label
from tsdtp.errors import ConfigError, DataError
from tsdtp.glue_tasks import TaskData

SELECTION_SEED = 0
"""Seed of the held-out selection split: fixed, so every run of a task holds out the same examples."""

SELECTION_WORD = "selection"
"""The word that marks a split label as a selection split (`selection_label`)."""

SPLITS: tuple[str, ...] = ("eval", SELECTION_WORD)
"""The splits an evaluation can run on: the task's evaluation split, or the held-out selection split."""


def selection_indices(count: int, fraction: float) -> tuple[list[int], list[int]]:
    """(training, selection) indices of a `count`-example training split: `fraction` of it held out, in order."""
    size = round(fraction * count)
    if fraction > 0 and not 1 <= size < count:
        raise DataError(f"selection_fraction {fraction:g} of {count} training examples leaves {size} to select on "
                        f"and {count - size} to train on; both need at least one")
    order = np.random.RandomState(SELECTION_SEED).permutation(count)
    return sorted(order[size:].tolist()), sorted(order[:size].tolist())


def split_selection(train: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """`train` without its held-out selection part, and that part (empty when `fraction` is 0)."""
    if fraction == 0:
        return train, train.select([])
    kept, held_out = selection_indices(len(train), fraction)
    return train.select(kept), train.select(held_out)


def selection_label(eval_label: str, fraction: float) -> str:
    """The label of the selection split, from the eval split's: `sst2 dev` -> `sst2 train selection 2%`,
    `qnli (dev split)` -> `qnli (dev split) train selection 10%`; a data-source tag is kept."""
    tag = tag_of_label(eval_label)
    base = eval_label[: -len(tag.label(""))] if tag is not None else eval_label
    base = base.removesuffix(" dev")
    return labelled(f"{base} train {SELECTION_WORD} {100 * fraction:g}%", tag)


def is_selection_label(label: str) -> bool:
    """Whether a split label (results.csv `eval_split`) names a selection split."""
    return f" train {SELECTION_WORD} " in str(label)


def training_and_evaluation(data: TaskData, fraction: float, split: str = "eval") -> tuple[Dataset, Dataset, str]:
    """The training split (without the selection part) and the split to evaluate, with its label.

    `split` is `eval` (the task's evaluation split) or `selection` (the held-out part; needs a
    `fraction` > 0 and the training data loaded). Without training data (evaluation only) nothing is split.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == SELECTION_WORD and fraction == 0:
        raise ConfigError("this run holds out no selection split (selection_fraction 0): evaluate on split 'eval'")
    if len(data.train) == 0:
        return data.train, data.eval, data.eval_name
    train, selection = split_selection(data.train, fraction)
    if split == SELECTION_WORD:
        return train, selection, selection_label(data.eval_name, fraction)
    return train, data.eval, data.eval_name
