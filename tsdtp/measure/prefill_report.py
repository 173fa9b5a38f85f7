"""`tsdtp prefill`: quality and speed of pruned prefill at several prompt lengths, written as two tables.

`llm_prefill_quality.csv`: one row per prompt length, setting and kind (`few-shot` SST-2 accuracy, `passages`
greedy agreement and perplexity), with mean FLOPs and keep ratios. `llm_prefill_speed.csv`: one row per prompt
length and engine (`tsdtp.measure.ttft`), with the TTFT speedup over transformers' `generate()` (in wall
and in CPU seconds), the FLOPs-implied speedup of the same prompt and the realization (wall speedup /
implied). Rows are upserted by model, length, kind or engine, and setting. `record_survival` writes the third,
`llm_prefill_survival.parquet`: which prompt tokens each layer keeps, traced on one few-shot prompt.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tsdtp.llm.prefill import prefill
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prefill_flops import DecoderShape, prefill_flops
from tsdtp.llm.prefill_quality import few_shot_quality, passage_quality
from tsdtp.llm.prefill_survival import SURVIVAL_TABLE, survival_rows
from tsdtp.llm.prompts import few_shot_prompts, label_token_ids, passages
from tsdtp.measure.ttft import (
    Engine,
    hf_generate_engine,
    llama_cpp_engine,
    llama_cpp_problem,
    prefill_engine,
    time_engines,
)
from tsdtp.runs.io import atomic_write_bytes
from tsdtp.runs.tables import upsert_csv

QUALITY_TABLE, SPEED_TABLE = "llm_prefill_quality.csv", "llm_prefill_speed.csv"
HF_ENGINE, LLAMA_CPP_ENGINE = "hf-generate", "llama.cpp"


@dataclass(frozen=True)
class PrefillReportSettings:
    """How much to measure: prompt lengths, examples per length, repeats, threads and where tables go."""

    lengths: tuple[int, ...] = (512, 1024, 2048)
    few_shot: int = 50
    passages: int = 5
    steps: int = 32
    speed_repeats: int = 3
    threads: int = 2
    gguf: Path | None = None
    tables_dir: Path = Path("reports/data")
    new_tokens: int = 8
    """Tokens each engine generates per timed call (the first, then `new_tokens - 1` decode steps)."""


@dataclass(frozen=True)
class PrefillWorkload:
    """The model, its tokenizer and label, the settings to compare (the first is the reference, usually
    dense), the protected token ids and the optional task scorers."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    label: str
    settings: Mapping[str, PrefillPruning]
    scorers: nn.ModuleDict | None = None

    @property
    def special_ids(self) -> frozenset[int]:
        """The tokenizer's special tokens (the chat template's): never pruned."""
        return frozenset(self.tokenizer.all_special_ids)


def quality_rows(work: PrefillWorkload, settings: PrefillReportSettings, data_dir: Path) -> list[dict[str, Any]]:
    """Few-shot and passage quality of every setting at every length (a line on standard error per length)."""
    rows, started = [], time.perf_counter()
    for length in settings.lengths:
        print(f"quality: {length} tokens, {settings.few_shot} few-shot prompts and {settings.passages} passages "
              f"({time.perf_counter() - started:.0f} s so far)", file=sys.stderr)
        if settings.few_shot:
            prompts = few_shot_prompts(work.tokenizer, data_dir, length, settings.few_shot)
            found = few_shot_quality(work.model, prompts, work.settings, work.special_ids,
                                     label_token_ids(work.tokenizer), work.scorers)
            rows += [{"kind": "few-shot sst2", "length": length, "setting": name, **values}
                     for name, values in found.items()]
        if settings.passages:
            texts = passages(work.tokenizer, data_dir, length, settings.steps, settings.passages)
            found = passage_quality(work.model, texts, work.settings, work.special_ids, settings.steps, work.scorers)
            rows += [{"kind": "passages newstest2016", "length": length, "setting": name, **values}
                     for name, values in found.items()]
    return [{"model": work.label, **row} for row in rows]


def _engines(work: PrefillWorkload, settings: PrefillReportSettings, context: int) -> dict[str, Engine]:
    engines = {HF_ENGINE: hf_generate_engine(work.model)}
    for name, pruning in work.settings.items():
        engines[name] = prefill_engine(work.model, pruning, work.special_ids, work.scorers)
    problem = llama_cpp_problem(settings.gguf) if settings.gguf else "no GGUF file was given"
    if problem is None:
        engines[LLAMA_CPP_ENGINE] = llama_cpp_engine(settings.gguf, settings.threads, context)
    else:
        print(f"ttft: llama.cpp is not timed: {problem}", file=sys.stderr)
    return engines


def speed_rows(work: PrefillWorkload, settings: PrefillReportSettings, data_dir: Path) -> list[dict[str, Any]]:
    """TTFT and decode rate of every engine at every length, on the first passage of that length (one warm-up
    call per engine before the first length)."""
    torch.set_num_threads(settings.threads)
    engines = _engines(work, settings, max(settings.lengths) + settings.new_tokens + 8)
    shape, rows = DecoderShape.of(work.model.config), []
    for index, length in enumerate(settings.lengths):
        ids = passages(work.tokenizer, data_dir, length, settings.new_tokens, 1)[0].input_ids
        timings = time_engines(engines, ids, settings.new_tokens, settings.speed_repeats, warmup=int(index == 0))
        reference = timings[HF_ENGINE].summary()
        for name, times in timings.items():
            pruning = work.settings.get(name)
            implied = float("nan")
            if pruning is not None:
                result = prefill(work.model, ids, pruning, work.special_ids, work.scorers)
                implied = prefill_flops(shape, result.keep_counts(), result.ranked_layers, pruning).implied_speedup
            summary = times.summary()
            speedup = reference["ttft_s"] / summary["ttft_s"]
            rows.append({"model": work.label, "length": length, "engine": name, **summary,
                         "ttft_speedup_vs_hf": speedup, "ttft_cpu_speedup_vs_hf": reference["ttft_cpu_s"] /
                         summary["ttft_cpu_s"], "flops_implied_speedup": implied, "realization": speedup / implied,
                         "threads": settings.threads, "new_tokens": settings.new_tokens})
    return rows


def record_prefill_report(work: PrefillWorkload, settings: PrefillReportSettings,
                          data_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure quality (when examples are asked for) and speed (when repeats are), upsert both tables."""
    quality = quality_rows(work, settings, data_dir) if settings.few_shot or settings.passages else []
    speed = speed_rows(work, settings, data_dir) if settings.speed_repeats else []
    if quality:
        upsert_csv(settings.tables_dir / QUALITY_TABLE, quality, ["model", "kind", "length", "setting"])
    if speed:
        upsert_csv(settings.tables_dir / SPEED_TABLE, speed, ["model", "length", "engine"])
    return quality, speed


def record_survival(work: PrefillWorkload, length: int, data_dir: Path, tables_dir: Path) -> pd.DataFrame:
    """Trace the first few-shot prompt of `length` tokens through every setting (`survival_rows`) and replace
    the model's rows of the survival table in `tables_dir` with them; returns the whole table."""
    (prompt,) = few_shot_prompts(work.tokenizer, data_dir, length, 1)
    new = pd.DataFrame(survival_rows(work.model, prompt, work.settings, work.special_ids,
                                     label_token_ids(work.tokenizer), work.scorers)).assign(model=work.label)
    path = Path(tables_dir) / SURVIVAL_TABLE
    old = pd.read_parquet(path) if path.is_file() else new.iloc[:0]
    table = pd.concat([old[old["model"] != work.label], new], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, table.to_parquet(index=False))
    return table
