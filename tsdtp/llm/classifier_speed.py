"""Honest speed for LLM classification: the pruned classifier against two dense forwards of the same weights.

`classifier_speed` times, on the same length-sorted batches of prompts and interleaved in one process,
transformers' own `LlamaForSequenceClassification` forward (`hf_sorted`, with the LoRA adapters in its
linears), the engine with pruning off (`engine_sorted`) and the pruned engine. The speedup is against the
fastest dense forward (`tsdtp.runs.speedups`), beside the FLOPs-implied speedup of the same batches and
the realization (measured / implied).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from tsdtp.core.config import DENSE_METHOD
from tsdtp.core.flops import method_flops
from tsdtp.errors import ConfigError
from tsdtp.llm.classifier_model import PrunedLlamaClassifier, llama_shape
from tsdtp.llm.classifier_prompts import PromptSplit, collate
from tsdtp.runs.speedups import SORTED_ORDER, interleaved_times, speedup_columns


def sorted_prompt_batches(split: PromptSplit, samples: int, batch_size: int, pad_id: int
                          ) -> list[dict[str, torch.Tensor]]:
    """The first `samples` prompts of `split`, sorted by length and collated into batches of `batch_size`."""
    chosen = sorted(range(min(samples, len(split))), key=lambda index: len(split.input_ids[index]))
    return [collate(split, chosen[start:start + batch_size], pad_id) for start in range(0, len(chosen), batch_size)]


@torch.inference_mode()
def classifier_speed(model: PrunedLlamaClassifier, split: PromptSplit, batch_size: int, pad_id: int,
                     repeats: int = 3, samples: int = 256, warmup: int = 1) -> dict[str, Any]:
    """The pruned classifier's time against the dense forwards on the same batches; medians over `repeats`.

    Returns `tsdtp.runs.speedups.SPEEDUP_COLUMNS` (`speedup` against the fastest dense forward), the FLOPs
    ratio of these batches and its implied speedup, the realization, each pass's median seconds, and how
    many prompts at which batch size. ConfigError when `repeats` or `samples` is below 1.
    """
    if repeats < 1 or samples < 1:
        raise ConfigError(f"speed timing needs at least one repeat and one prompt (got {repeats}, {samples})")
    was_training = model.training
    model.eval()
    batches = sorted_prompt_batches(split, samples, batch_size, pad_id)
    pruned = model.pruning
    dense = pruned.with_overrides({"method": DENSE_METHOD})

    def engine(pruning_on: bool) -> None:
        model.pruning = pruned if pruning_on else dense
        try:
            for batch in batches:
                model(batch)
        finally:
            model.pruning = pruned

    def library() -> None:
        for batch in batches:
            model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    times = interleaved_times({"hf_sorted": library, "engine_sorted": lambda: engine(False),
                               "pruned": lambda: engine(True)}, repeats, warmup)
    columns = speedup_columns({SORTED_ORDER: times["pruned"]},
                              {name: times[name] for name in ("hf_sorted", "engine_sorted")})
    tokens = torch.cat([model(batch).engine.tokens_per_layer for batch in batches])
    ratio = method_flops(tokens, llama_shape(model), pruned).ratio
    model.train(was_training)
    return {**columns, "flops_ratio": ratio, "flops_speedup": 1 / ratio,
            "realization": float(columns["speedup"]) * ratio,
            **{f"{name}_seconds": statistics.median(values) for name, values in times.items()},
            "speed_prompts": sum(len(batch["input_ids"]) for batch in batches), "speed_batch_size": batch_size}
