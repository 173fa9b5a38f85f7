"""Side-by-side throughput of a pruned model against the dense baselines (`tsdtp.runs.speedups`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch

from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.evaluate import predict_batch
from tsdtp.classification.model import PrunedClassifier
from tsdtp.core.config import DENSE_METHOD, PruningConfig
from tsdtp.runs.speedups import BASELINES, ENGINE, HF, ORDERS, SORTED_ORDER, speedup_columns

Forward = Callable[[dict[str, torch.Tensor]], object]


def time_once(forward: Forward, batches: Sequence[dict[str, torch.Tensor]]) -> float:
    """Seconds to run `forward` over every batch once."""
    started = time.perf_counter()
    for batch in batches:
        forward(batch)
    return time.perf_counter() - started


@contextmanager
def _pruning(model: PrunedClassifier, pruning: PruningConfig) -> Iterator[None]:
    """Run the block with `model.pruning` set to `pruning`, then restore it."""
    own = model.pruning
    model.pruning = pruning
    try:
        yield
    finally:
        model.pruning = own


def _timed(model: PrunedClassifier, pruning: PruningConfig, forward: Forward,
           batches: Sequence[dict[str, torch.Tensor]]) -> float:
    with _pruning(model, pruning):
        return time_once(forward, batches)


@torch.inference_mode()
def measured_speedup(model: PrunedClassifier, split: EncodedSplit, batch_size: int, pad_id: int,
                     repeats: int = 3, warmup: int = 1) -> dict[str, Any]:
    """`tsdtp.runs.speedups.SPEEDUP_COLUMNS` of the model's pruning against the dense baselines, interleaved.

    The baselines are `transformers`' own forward of the same weights (SDPA attention) and the
    packed engine with pruning off, each on batches in dataset order and length-sorted; the
    pruned model is timed in both orders. `speedup` is against the fastest baseline, in its
    order. Batches are pre-collated, so tokenization and padding are not timed.
    """
    model.eval()
    pruned = model.pruning
    engine = pruned.with_overrides({"method": DENSE_METHOD})
    lengths = split.lengths()
    batches = {order: [collate(split, indices, pad_id)
                       for indices in batch_indices(lengths, batch_size, False, sort_by_length=order == SORTED_ORDER)]
               for order in ORDERS}
    forwards = {HF: (pruned, model.adapter.dense_logits), ENGINE: (engine, partial(predict_batch, model)),
                "pruned": (pruned, partial(predict_batch, model))}
    units = [(name, order) for name in forwards for order in ORDERS]
    times: dict[tuple[str, str], list[float]] = {unit: [] for unit in units}
    for repeat in range(warmup + repeats):
        for name, order in units:
            seconds = _timed(model, *forwards[name], batches[order])
            if repeat >= warmup:
                times[(name, order)].append(seconds)
    baselines = {name: times[unit] for name, unit in BASELINES.items()}
    return speedup_columns({order: times[("pruned", order)] for order in ORDERS}, baselines)
