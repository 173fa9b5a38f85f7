"""Honest speed for translation: the encoder alone against two dense encoders, and end-to-end `generate()`.

The encoder is a small part of beam search on short captions, so the two are timed apart.
`encoder_speed` times the pruning encoder (its exit mode's output assembly included) against
transformers' own dense encoder (`hf_sorted`) and the engine with pruning off (`engine_sorted`) on
the same length-sorted batches, interleaved in one process, and reports the speedup against the
fastest of the two (`tsdtp.runs.speedups`), the FLOPs-implied speedup of the same batches and their
ratio (the realization). `generation_speed` times end-to-end generation against the library's
dense `generate()`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from tsdtp.core.config import DENSE_METHOD
from tsdtp.core.exits import TokenExit
from tsdtp.core.flops import encoder_shape, method_flops
from tsdtp.runs.speedups import SORTED_ORDER, interleaved_times, speedup_columns
from tsdtp.translation.encoding import collate_sources
from tsdtp.translation.evaluate import generation_budget, length_sorted
from tsdtp.translation.model import PrunedTranslator

Batch = dict[str, torch.Tensor]


def sorted_batches(tokenizer: PreTrainedTokenizerBase, source_ids: Sequence[Sequence[int]], batch_size: int
                   ) -> list[tuple[Batch, int]]:
    """Length-sorted, pre-collated batches of `source_ids`, each with its longest source length."""
    batches = []
    for indices in length_sorted(source_ids, batch_size):
        batches.append((collate_sources([source_ids[i] for i in indices], tokenizer.pad_token_id),
                        max(len(source_ids[i]) for i in indices)))
    return batches


@torch.inference_mode()
def encoder_speed(translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase,
                  source_ids: Sequence[Sequence[int]], batch_size: int, repeats: int = 5, warmup: int = 1
                  ) -> dict[str, float | str | None]:
    """The pruning encoder's time against the dense encoders on the same batches; medians over `repeats`.

    Returns `encoder_speedup` (against the fastest dense encoder, named by `encoder_baseline`),
    `encoder_speedup_vs_hf` and `encoder_speedup_vs_engine`, the FLOPs ratio of these batches and its
    implied speedup, the realization (measured / implied), and each median time in seconds.
    """
    translator.eval()
    batches = sorted_batches(tokenizer, source_ids, batch_size)
    pruned = translator.pruning
    dense = pruned.with_overrides({"method": DENSE_METHOD, "exit_mode": TokenExit.DELETE.value})

    def engine(pruning_on: bool) -> None:
        translator.pruning = pruned if pruning_on else dense
        for batch, _ in batches:
            translator.encode(batch["input_ids"], batch["attention_mask"])
        translator.pruning = pruned

    def library() -> None:
        for batch, _ in batches:
            translator.adapter.dense_encoder(batch["input_ids"], batch["attention_mask"])

    times = interleaved_times({"hf_sorted": library, "engine_sorted": lambda: engine(False),
                                 "pruned": lambda: engine(True)}, repeats, warmup)
    columns = speedup_columns({SORTED_ORDER: times["pruned"]},
                              {name: times[name] for name in ("hf_sorted", "engine_sorted")})
    tokens = torch.cat([translator.encode(batch["input_ids"], batch["attention_mask"]).tokens_per_layer
                        for batch, _ in batches])
    ratio = method_flops(tokens, encoder_shape(translator), pruned).ratio
    speedup = float(columns["speedup"])
    return {"encoder_speedup": speedup, "encoder_baseline": columns["speedup_baseline"],
            "encoder_speedup_vs_hf": columns["speedup_vs_hf_sorted"],
            "encoder_speedup_vs_engine": columns["speedup_vs_engine_sorted"], "encoder_flops_ratio": ratio,
            "encoder_flops_speedup": 1 / ratio, "encoder_realization": speedup * ratio,
            **{f"encoder_{name}_seconds": statistics.median(values) for name, values in times.items()},
            "encoder_sentences": len(source_ids), "encoder_batch_size": batch_size}


@torch.inference_mode()
def generation_speed(translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase,
                     source_ids: Sequence[Sequence[int]], batch_size: int, num_beams: int, max_target_length: int,
                     repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """End-to-end generation time of the pruned path against the library's dense `generate()`.

    Same batches (pre-collated, length-sorted), same beam size and token budget, interleaved
    in one process; medians over `repeats`. Returns seconds for each, the speedup (dense /
    pruned), per-sentence latency (ms) and throughput (sentences per second).
    """
    translator.eval()
    batches = [(batch, generation_budget([longest], max_target_length))
               for batch, longest in sorted_batches(tokenizer, source_ids, batch_size)]

    def run(pruned: bool) -> None:
        for batch, budget in batches:
            if pruned:
                translator.generate(batch["input_ids"], batch["attention_mask"], num_beams, budget)
            else:
                translator.dense_generate(batch["input_ids"], batch["attention_mask"], num_beams, budget)

    times = interleaved_times({"dense": lambda: run(False), "pruned": lambda: run(True)}, repeats, warmup)
    dense_s, pruned_s, n = statistics.median(times["dense"]), statistics.median(times["pruned"]), len(source_ids)
    return {"dense_seconds": dense_s, "pruned_seconds": pruned_s, "speedup": dense_s / pruned_s,
            "latency_ms": 1000 * pruned_s / n, "dense_latency_ms": 1000 * dense_s / n,
            "throughput": n / pruned_s, "dense_throughput": n / dense_s, "speed_sentences": n,
            "speed_batch_size": batch_size}
