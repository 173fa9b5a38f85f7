"""Tokenize a split once, then cut it into dynamically padded batches."""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from tsdtp.glue_tasks import GlueTask


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids per example (unpadded), their labels, and the raw texts."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[int]
    texts: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int) -> EncodedSplit:
        """The first `count` examples."""
        return EncodedSplit(self.input_ids[:count], self.token_type_ids[:count], self.labels[:count],
                            self.texts[:count])

    def lengths(self) -> list[int]:
        """Token count of every example, specials included."""
        return [len(ids) for ids in self.input_ids]


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[tuple[str, ...]], max_length: int,
                 what: str = "input") -> tuple[list[list[int]], list[list[int]]]:
    """Tokenize single texts or pairs; warn (never fail) on empty or over-long text.

    Over-long inputs are truncated to `max_length` tokens (capped at the model's limit).
    """
    limit = min(max_length, tokenizer.model_max_length)
    columns = list(zip(*texts)) if texts else [[]]
    first, second = list(columns[0]), (list(columns[1]) if len(columns) > 1 else None)
    empty = sum(1 for row in texts if not any(part.strip() for part in row))
    if empty:
        warnings.warn(f"{empty} empty {what} text(s): they are classified from their special tokens alone",
                      stacklevel=2)
    full = tokenizer(first, second, truncation=False, verbose=False)["input_ids"]
    long = sum(1 for ids in full if len(ids) > limit)
    if long:
        warnings.warn(f"{long} {what} text(s) longer than {limit} tokens were truncated to {limit}", stacklevel=2)
    encoded = tokenizer(first, second, truncation=True, max_length=limit)
    type_ids = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
    return encoded["input_ids"], type_ids


def encode_split(task: GlueTask, split: Dataset, tokenizer: PreTrainedTokenizerBase,
                 max_length: int | None = None) -> EncodedSplit:
    """Tokenize a whole split of `task` (sentence pairs where the task has two fields)."""
    texts = list(zip(*(split[field] for field in task.text_fields)))
    input_ids, type_ids = encode_texts(tokenizer, texts, max_length or task.max_length, what=task.name)
    return EncodedSplit(input_ids, type_ids, list(split["label"]), texts)


def collate(split: EncodedSplit, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the chosen examples to the longest of them."""
    width = max(len(split.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(indices), width), dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        n = len(split.input_ids[i])
        ids[row, :n] = torch.tensor(split.input_ids[i])
        types[row, :n] = torch.tensor(split.token_type_ids[i])
        mask[row, :n] = 1
    labels = torch.tensor([split.labels[i] for i in indices], dtype=torch.long)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}


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
