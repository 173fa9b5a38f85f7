"""Tokenize parallel text once, cut it into length-grouped token-budget batches, pad batches."""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from tsdtp.translation.data import ParallelCorpus

LABEL_PAD = -100
"""Label value ignored by the loss."""


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids per sentence pair (unpadded, each ending in `</s>`) and the raw text."""

    source_ids: list[list[int]]
    target_ids: list[list[int]]
    corpus: ParallelCorpus

    def __len__(self) -> int:
        return len(self.source_ids)

    def source_lengths(self) -> list[int]:
        """Source token counts, `</s>` included."""
        return [len(ids) for ids in self.source_ids]

    def target_lengths(self) -> list[int]:
        """Target token counts, `</s>` included."""
        return [len(ids) for ids in self.target_ids]


def encode_sources(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
                   what: str = "source") -> list[list[int]]:
    """Tokenize source sentences; warn (never fail) on empty or over-long ones.

    An empty sentence becomes `</s>` alone; a sentence over `max_length` tokens is cut to
    its first `max_length - 1` tokens plus `</s>`.
    """
    empty = sum(1 for text in texts if not text.strip())
    if empty:
        warnings.warn(f"{empty} empty {what} sentence(s): they are encoded as </s> alone", stacklevel=2)
    full = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    long = sum(1 for ids in full if len(ids) > max_length)
    if not long:
        return full
    warnings.warn(f"{long} {what} sentence(s) longer than {max_length} tokens were truncated to {max_length}",
                  stacklevel=2)
    return [ids if len(ids) <= max_length else ids[: max_length - 1] + ids[-1:] for ids in full]


def encode_targets(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Tokenize target sentences (the tokenizer's target mode), truncated to `max_length` like sources."""
    full = tokenizer(text_target=list(texts), truncation=False, verbose=False)["input_ids"]
    return [ids if len(ids) <= max_length else ids[: max_length - 1] + ids[-1:] for ids in full]


def encode_corpus(tokenizer: PreTrainedTokenizerBase, corpus: ParallelCorpus, max_source_length: int,
                  max_target_length: int) -> EncodedPairs:
    """Tokenize both sides of a corpus."""
    sources = encode_sources(tokenizer, corpus.sources, max_source_length, what=f"{corpus.name} source")
    return EncodedPairs(sources, encode_targets(tokenizer, corpus.targets, max_target_length), corpus)


def token_batches(source_lengths: Sequence[int], target_lengths: Sequence[int], max_tokens: int,
                  shuffle: bool, seed: int = 0) -> list[list[int]]:
    """Batches whose padded size (sentences x longest side) stays within `max_tokens`.

    Pairs are sorted by length (ties in random order when shuffling) and cut greedily, so
    there is almost no padding; with `shuffle` the batch order is random too.
    """
    sizes = [max(s, t) for s, t in zip(source_lengths, target_lengths)]
    order = list(range(len(sizes)))
    if shuffle:
        random.Random(seed).shuffle(order)
    order.sort(key=lambda i: sizes[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and (len(current) + 1) * sizes[index] > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    if shuffle:
        random.Random(seed + 1).shuffle(batches)
    return batches


def sentence_batches(source_lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches of `batch_size` sentences, in dataset order."""
    return [list(range(start, min(start + batch_size, len(source_lengths))))
            for start in range(0, len(source_lengths), batch_size)]


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad integer rows into a [B, longest] tensor."""
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for index, row in enumerate(rows):
        out[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate_pairs(pairs: EncodedPairs, indices: Sequence[int], pad_id: int, decoder_start_id: int
                  ) -> dict[str, torch.Tensor]:
    """Padded `input_ids`, `attention_mask`, `decoder_input_ids` (labels shifted right) and `labels`."""
    batch = collate_sources([pairs.source_ids[i] for i in indices], pad_id)
    labels = pad_rows([pairs.target_ids[i] for i in indices], LABEL_PAD)
    shifted = labels[:, :-1].masked_fill(labels[:, :-1] == LABEL_PAD, pad_id)
    start = torch.full((len(indices), 1), decoder_start_id, dtype=torch.long)
    return {**batch, "decoder_input_ids": torch.cat([start, shifted], dim=1), "labels": labels}


def collate_sources(source_ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Padded `input_ids` and `attention_mask` of source sentences."""
    input_ids = pad_rows(source_ids, pad_id)
    return {"input_ids": input_ids, "attention_mask": _mask([len(ids) for ids in source_ids], input_ids.shape[1])}


def _mask(lengths: Sequence[int], width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
