"""Quality of pruned prefill against the dense prefill of the same prompts.

Few-shot classification: the answer is the label word with the higher logit at the last prompt token.
Passages: the next `steps` greedy tokens, compared position by position with dense greedy generation (each
generating on its own: after a first difference, later positions rarely agree), the same with teacher forcing
(the dense tokens fed to the pruned cache; agreement of each next-token argmax, no compounding), and the
perplexity of the passage's true continuation. FLOPs are `tsdtp.llm.prefill_flops`, averaged over prompts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from tsdtp.llm.prefill import PrefillResult, prefill
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prefill_decode import continuation_logits, greedy_tokens
from tsdtp.llm.prefill_flops import DecoderShape, prefill_flops
from tsdtp.llm.prompts import FewShotPrompt, Passage
from tsdtp.stats.paired import paired_bootstrap


def _flops_columns(model: PreTrainedModel, result: PrefillResult, pruning: PrefillPruning) -> dict[str, float]:
    flops = prefill_flops(DecoderShape.of(model.config), result.keep_counts(), result.ranked_layers, pruning)
    kept = sum(result.keep_counts()) / (len(result.keep_counts()) * result.prompt_length)
    return {"flops_ratio": flops.ratio, "keep_ratio": kept, "prompt_tokens": result.prompt_length}


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


def few_shot_quality(model: PreTrainedModel, prompts: Sequence[FewShotPrompt], settings: Mapping[str, PrefillPruning],
                     special_ids: frozenset[int], label_ids: tuple[int, int],
                     scorers: nn.ModuleDict | None = None) -> dict[str, dict[str, Any]]:
    """Per setting: accuracy, agreement of the answer with the dense answer, mean FLOPs and keep ratios, and the
    accuracy difference from the first setting (percent points) with its paired bootstrap 95% interval over the
    prompts (`difference_low`, `difference_high`)."""
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    for prompt in tqdm(prompts, desc="few-shot prompts", leave=False):
        answers = {}
        for name, pruning in settings.items():
            result = prefill(model, prompt.input_ids, pruning, special_ids, scorers)
            answers[name] = int(result.logits[label_ids[1]] > result.logits[label_ids[0]])
            rows[name].append({"accuracy": float(answers[name] == prompt.label), **_flops_columns(model, result,
                                                                                                   pruning)})
        dense = answers[next(iter(settings))]
        for name in settings:
            rows[name][-1]["answer_agreement"] = float(answers[name] == dense)
    reference = [row["accuracy"] for row in rows[next(iter(settings))]]
    found = {}
    for name, settings_rows in rows.items():
        interval = paired_bootstrap(np.array([row["accuracy"] for row in settings_rows]), np.array(reference))
        found[name] = {**_mean_rows(settings_rows), "examples": len(settings_rows), "difference": interval.difference,
                       "difference_low": interval.low, "difference_high": interval.high}
    return found


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(nn.functional.cross_entropy(logits.float(), targets, reduction="sum"))


def passage_quality(model: PreTrainedModel, passages: Sequence[Passage], settings: Mapping[str, PrefillPruning],
                    special_ids: frozenset[int], steps: int = 32,
                    scorers: nn.ModuleDict | None = None) -> dict[str, dict[str, Any]]:
    """Per setting: greedy agreement with the first setting (dense) free-running and teacher-forced, the
    common prefix length, the continuation's perplexity, and mean FLOPs and keep ratios."""
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    for passage in passages:
        dense_tokens = None
        for name, pruning in settings.items():
            result = prefill(model, passage.input_ids, pruning, special_ids, scorers)
            tokens = greedy_tokens(model, result, steps)
            dense_tokens = tokens if dense_tokens is None else dense_tokens
            same = (tokens == dense_tokens).tolist()
            forced = continuation_logits(model, result, dense_tokens).argmax(dim=-1) == dense_tokens
            true_logits = continuation_logits(model, result, passage.continuation)
            rows[name].append({
                "agreement": sum(same) / steps, "agreement_teacher_forced": float(forced.float().mean()),
                "common_prefix": float(same.index(False) if False in same else steps),
                "nll_sum": _nll(true_logits, passage.continuation), "nll_tokens": float(len(passage.continuation)),
                **_flops_columns(model, result, pruning)})
    summary = {}
    for name, found in rows.items():
        mean = _mean_rows(found)
        perplexity = math.exp(sum(r["nll_sum"] for r in found) / sum(r["nll_tokens"] for r in found))
        summary[name] = {key: value for key, value in mean.items() if not key.startswith("nll")} | {
            "perplexity": perplexity, "examples": len(found), "steps": steps}
    return summary
