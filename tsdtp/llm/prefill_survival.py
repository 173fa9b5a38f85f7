"""Which prompt tokens each layer of a pruned prefill computes and caches, traced on one few-shot prompt per
setting: the data of the token heatmap and of the per-layer cache sizes (notebooks/07_llm_prefill.ipynb).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from tsdtp.llm.prefill import prefill
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prompts import FewShotPrompt

SURVIVAL_TABLE = "llm_prefill_survival.parquet"
"""One row per model, setting and layer, beside the other prefill tables."""


def survival_rows(model: PreTrainedModel, prompt: FewShotPrompt, settings: Mapping[str, PrefillPruning],
                  special_ids: frozenset[int], label_ids: tuple[int, int],
                  scorers: nn.ModuleDict | None = None) -> list[dict[str, Any]]:
    """Per setting and layer: the prompt positions the layer computed and cached (`positions`, `cached`), with
    the prompt's length, where its query review starts and where the label words sit (the demonstrations'
    answers, and the instruction's own mention of them)."""
    labels = torch.isin(prompt.input_ids, torch.tensor(label_ids)).nonzero().flatten().tolist()
    rows = []
    for name, pruning in settings.items():
        result = prefill(model, prompt.input_ids, pruning, special_ids, scorers)
        rows += [{"setting": name, "layer": layer, "cached": len(positions), "positions": positions.tolist(),
                  "prompt_tokens": result.prompt_length, "query_start": prompt.query_start,
                  "label_positions": labels} for layer, positions in enumerate(result.cache.positions)]
    return rows
