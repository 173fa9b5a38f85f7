"""Side-by-side throughput of a pruned model against the library's dense forward."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import torch

from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.evaluate import predict_batch
from tsdtp.classification.model import PrunedClassifier


def time_once(forward: Callable[[dict[str, torch.Tensor]], object], batches: Sequence[dict[str, torch.Tensor]]
              ) -> float:
    """Seconds to run `forward` over every batch once."""
    started = time.perf_counter()
    for batch in batches:
        forward(batch)
    return time.perf_counter() - started


@torch.inference_mode()
def measured_speedup(model: PrunedClassifier, split: EncodedSplit, batch_size: int, pad_id: int,
                     repeats: int = 3, warmup: int = 1) -> float:
    """Median dense time over median pruned time on the same batches, interleaved.

    Dense is `transformers`' own forward of the same weights (SDPA attention). Batches are
    pre-collated, in dataset order, so tokenization and padding are not timed.
    """
    model.eval()
    batches = [collate(split, indices, pad_id) for indices in batch_indices(split.lengths(), batch_size, False)]
    dense = model.adapter.dense_logits
    pruned = partial(predict_batch, model)
    for _ in range(warmup):
        time_once(dense, batches)
        time_once(pruned, batches)
    dense_times, pruned_times = [], []
    for _ in range(repeats):
        dense_times.append(time_once(dense, batches))
        pruned_times.append(time_once(pruned, batches))
    return statistics.median(dense_times) / statistics.median(pruned_times)
