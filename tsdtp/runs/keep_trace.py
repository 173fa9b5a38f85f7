"""The per-example keep trace of one evaluated batch as a tidy frame: a row per example, layer and token.

Classification and LLM classification write it the same way (`tsdtp.runs.eval_files.write_keep_traces`), so the
figure and comparison notebooks read both alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

TRACE_COLUMNS: list[str] = ["example", "layer", "position", "token", "kept", "label", "pred", "correct"]
"""Columns of a trace frame, in order."""


def trace_frame(input_ids: Sequence[Sequence[int]], labels: Sequence[int], indices: Sequence[int],
                trace: torch.Tensor, predictions: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> pd.DataFrame:
    """Rows `example, layer, position, token, kept, label, pred, correct` of the batch `indices` of a split
    (`input_ids` and `labels` per example), from its keep trace `[B, L, N]` and predictions `[B]`."""
    parts = []
    layers = trace.shape[1]
    for row, example in enumerate(indices):
        ids = input_ids[example]
        length = len(ids)
        tokens = np.asarray(tokenizer.convert_ids_to_tokens(list(ids)), dtype=object)
        label, pred = int(labels[example]), int(predictions[row])
        parts.append(pd.DataFrame({
            "example": example, "layer": np.repeat(np.arange(layers), length),
            "position": np.tile(np.arange(length), layers), "token": np.tile(tokens, layers),
            "kept": trace[row, :, :length].reshape(-1).numpy().astype(bool), "label": label, "pred": pred,
            "correct": label == pred}))
    if not parts:
        return pd.DataFrame(columns=TRACE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[TRACE_COLUMNS]
