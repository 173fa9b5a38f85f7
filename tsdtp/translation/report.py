"""Evaluate a trained translation run under any method and record it in results.csv.

One results.csv row per test set (Multi30k test_2016_flickr, captions; newstest2016, news),
`metric_name` "bleu". Every measured figure (chrF, tokens kept, latency, throughput, ...)
also goes into the wide `translation.csv` beside results.csv and into the run's
`eval/<name>.json`; the keep traces go to `eval/<name>.parquet` (see `TRACE_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from tsdtp.core.config import PruningConfig
from tsdtp.errors import ConfigError
from tsdtp.runs.eval_files import eval_file, write_keep_traces
from tsdtp.runs.io import atomic_write_bytes, atomic_write_json
from tsdtp.runs.results import KEY_COLUMNS, RESULT_COLUMNS, build_result_row, upsert_results
from tsdtp.runs.run_dir import holding_evaluation_lock
from tsdtp.runs.tables import upsert_csv
from tsdtp.translation.checkpoint import load_translator
from tsdtp.translation.config import MTConfig
from tsdtp.translation.data import EVAL_CORPORA, data_tag, load_corpus
from tsdtp.translation.encoding import encode_sources
from tsdtp.translation.evaluate import score, summarize, translate
from tsdtp.translation.model import PrunedTranslator
from tsdtp.translation.speed import encoder_speed, generation_speed

TRANSLATION_TABLE = "translation.csv"
"""The wide table of translation figures, written beside results.csv."""

COST_COLUMNS: tuple[str, ...] = ("encoder_gflops", "cross_flops_ratio", "cross_gflops")
"""Per-sentence encoder and cross-attention costs (`tsdtp.translation.evaluate.summarize`)."""

DOMAIN_NOTES: dict[str, str] = {
    "news": "out of domain: a model trained on image captions scores near 0 BLEU on news, which is noise; the row "
            "is kept for completeness and left out of the headline figures"}
"""The `note` of translation.csv rows, by test-set domain."""


@holding_evaluation_lock
def evaluate_translation(run_dir: str | Path, data_dir: str | None = None, overrides: dict[str, Any] | None = None,
                         results_csv: str | Path | None = None, splits: Sequence[str] = EVAL_CORPORA,
                         batch_size: int = 64, num_beams: int = 4, max_eval_samples: int | None = None,
                         speed_repeats: int = 0, speed_samples: int = 256, latency_samples: int = 32,
                         trace_samples: int | None = 200, progress: bool = True) -> dict[str, Any]:
    """Translate each test set with `run_dir`'s model (optionally under another method or k) and score it.

    `speed_repeats > 0` also times, in this process, end-to-end generation against the library's dense
    `generate()` and the encoder alone against the dense encoders (`tsdtp.translation.speed`):
    throughput on the first `speed_samples` sentences of the first split at `batch_size`, and
    latency at batch size 1 on `latency_samples` of them.
    Writes `eval/<name>.json`, `eval/<name>.parquet` and `eval/<name>.<split>.txt`
    (hypotheses); upserts rows into `results_csv` (and `translation.csv` beside it) when given.
    On data other than the standard data, the split labels and `<name>` name the source
    (`tsdtp.data_files.SourceTag`).
    """
    run_dir = Path(run_dir)
    translator, tokenizer, config, label = load_translator(run_dir)
    pruning = translator.pruning.with_overrides(overrides or {})
    if not pruning.spec.translatable:
        raise ConfigError(f"method {pruning.method!r} is not available for translation")
    translator.pruning = pruning
    record: dict[str, Any] = {"run_dir": str(run_dir), "model": label, "pruning": translator.pruning.__dict__,
                              "batch_size": batch_size, "num_beams": num_beams,
                              "threads": torch.get_num_threads(), "splits": {}}
    traces, speed, source = [], {}, data_tag(data_dir)
    for index, split in enumerate(splits):
        corpus = load_corpus(split, data_dir).head(max_eval_samples)
        source_ids = encode_sources(tokenizer, corpus.sources, config.max_source_length, what=corpus.name)
        translations = translate(translator, tokenizer, source_ids, batch_size, num_beams, config.max_target_length,
                                 trace_samples=trace_samples, progress=progress)
        figures = {"eval_split": corpus.split_label, "domain": corpus.domain, "n_eval": len(corpus),
                   **score(translations.hypotheses, corpus.targets), **summarize(translator, translations),
                   "translate_seconds": translations.seconds}
        if index == 0 and speed_repeats > 0:
            record["speed_split"] = split
            speed = _speed(translator, tokenizer, source_ids, config, batch_size, num_beams, speed_repeats,
                           speed_samples, latency_samples)
        record["splits"][split] = figures
        hypotheses = "".join(f"{line}\n" for line in translations.hypotheses)
        atomic_write_bytes(eval_file(run_dir, pruning, f"{split}.txt", source), hypotheses.encode())
        if translations.traces is not None:
            traces.append(translations.traces.assign(eval_split=corpus.split_label))
    record["speed"] = speed
    atomic_write_json(eval_file(run_dir, pruning, "json", source), record)
    if traces:
        write_keep_traces(run_dir, pruning, config.task, pd.concat(traces, ignore_index=True), source)
    if results_csv is not None:
        upsert_translation_results(results_csv, translation_rows(record, config))
    return record


def _speed(translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase, source_ids: list[list[int]],
           config: MTConfig, batch_size: int, num_beams: int, repeats: int, samples: int, latency_samples: int
           ) -> dict[str, float]:
    speed = generation_speed(translator, tokenizer, source_ids[:samples], batch_size, num_beams,
                             config.max_target_length, repeats=repeats)
    speed.update(encoder_speed(translator, tokenizer, source_ids[:samples], batch_size, repeats=repeats))
    if latency_samples > 0:
        single = generation_speed(translator, tokenizer, source_ids[:latency_samples], 1, num_beams,
                                  config.max_target_length, repeats=repeats)
        speed.update({"latency_ms": single["latency_ms"], "dense_latency_ms": single["dense_latency_ms"],
                      "latency_speedup": single["speedup"]})
        encoder = encoder_speed(translator, tokenizer, source_ids[:latency_samples], 1, repeats=repeats)
        speed.update({f"{name}_b1": value for name, value in encoder.items() if name.startswith("encoder_speedup")
                      or name == "encoder_realization"})
    return speed


def translation_rows(record: dict[str, Any], config: MTConfig) -> list[dict[str, Any]]:
    """The results.csv rows of one evaluation record (one per test set), plus the extra figures.

    Speed figures go on the row of the test set they were measured on; the others leave them empty.
    """
    pruning = PruningConfig.from_dict(record["pruning"])
    rows = []
    for split, figures in record["splits"].items():
        speed = record["speed"] if record.get("speed_split") == split else {}
        row = build_result_row(task=config.task, model=record["model"], pruning=pruning, metric_name="bleu",
                               metric=figures["bleu"], keep_ratio=figures["keep_ratio"],
                               flops_ratio=figures["flops_ratio"], speedup=speed.get("speedup", float("nan")),
                               batch_size=record["batch_size"], threads=record["threads"], n_eval=figures["n_eval"],
                               eval_split=figures["eval_split"], scorer_overhead=figures["scorer_overhead"],
                               run_dir=record["run_dir"], seed=config.seed, variant=run_variant(config, pruning))
        rows.append({
            **row, "chrf": round(figures["chrf"], 2), "domain": figures["domain"], "exit_mode": pruning.exit_mode,
            "cross_keep_ratio": round(figures["cross_keep_ratio"], 4),
            "tokens_kept": round(figures["tokens_kept"], 2), "source_tokens": round(figures["source_tokens"], 2),
            "target_tokens": round(figures.get("target_tokens", float("nan")), 2),
            **{key: round(figures.get(key, float("nan")), 4) for key in COST_COLUMNS},
            "num_beams": record["num_beams"], "note": DOMAIN_NOTES.get(figures["domain"], ""),
            **{key: round(value, 4) if isinstance(value, float) else value for key, value in speed.items()},
        })
    return rows


def run_variant(config: MTConfig, pruning: PruningConfig) -> str:
    """What tells this evaluation apart from others of the same method, k, gamma and keep target (results.csv's
    `variant`): the exit mode and the 0-based pruning layers of a pruning method (resolved: a translation run's
    default reads `exit after 1,2,3,4,5` for six layers, `translation_pruning`), the trained exit mode when
    evaluated under another, and distillation; the seed has its own column. Empty for a dense run."""
    parts = []
    if pruning.prunes:
        layers = pruning.resolved_prune_layers(config.encoder_layers)
        parts.append(f"{pruning.exit_mode} after {','.join(map(str, layers))}")
        if pruning.exit_mode != config.pruning.exit_mode:
            parts.append(f"trained {config.pruning.exit_mode}")
    if config.distill_weight:
        parts.append(f"kd {config.distill_weight:g}")
    return "; ".join(parts)


def upsert_translation_results(results_csv: str | Path, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Upsert the contracted columns into results.csv and every column into `translation.csv` beside it.

    Returns the wide translation table.
    """
    rows = list(rows)
    upsert_results(results_csv, rows)
    return upsert_csv(Path(results_csv).parent / TRANSLATION_TABLE, rows, KEY_COLUMNS, leading=RESULT_COLUMNS,
                      sort_by=["eval_split", "method", "k"])
