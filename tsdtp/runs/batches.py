"""Batches of example indices for training (shuffled, grouped by length) and evaluation (in order, or sorted).

Shared by the task packages that batch variable-length examples (`classification`, `llm`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def batch_indices(lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0,
                  sort_by_length: bool = False, group_size: int = 50) -> list[list[int]]:
    """Indices of each batch.

    shuffle: random order, then sorted by length within groups of `group_size` batches and
        the batches shuffled again (length grouping: far less padding, still random).
    sort_by_length: the whole set sorted by length (an evaluation option, reported as such).
    """
    order = list(range(len(lengths)))
    if sort_by_length:
        order.sort(key=lambda i: lengths[i])
    elif shuffle:
        rng = random.Random(seed)
        rng.shuffle(order)
        chunk = batch_size * group_size
        order = [i for start in range(0, len(order), chunk)
                 for i in sorted(order[start:start + chunk], key=lambda i: lengths[i])]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if shuffle and not sort_by_length:
        random.Random(seed + 1).shuffle(batches)
    return batches
