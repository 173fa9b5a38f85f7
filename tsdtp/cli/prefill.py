"""`tsdtp prefill`: quality and speed of pruned prefill on long prompts (`tsdtp.measure.prefill_report`).

Settings compared: dense, then one progressive LazyLLM schedule per `--final-keep` (`progressive_schedule`:
`--steps-prune` pruning layers from 15% to 75% of the depth, the kept fraction falling geometrically to the
final keep), then each `--schedule` (layers and ratios spelled out). `--scorers` adds TS-DTP's
trained task scorers at `--gamma` (the schedule is then the one they were trained for).
`tsdtp prefill-train` trains those scorers briefly on few-shot SST-2 prompts built from training rows
(`tsdtp.llm.prefill_train`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tsdtp.data_files import require_data_dir
from tsdtp.gguf_models import DEFAULT_LLM, packaged_gguf
from tsdtp.llm.classifier_causal import load_prefill_model
from tsdtp.llm.prefill_config import (
    DEFAULT_RANKING,
    PrefillPruning,
    progressive_schedule,
    settings_to_compare,
)
from tsdtp.llm.prefill_scorers import load_scorers, make_scorers, save_scorers
from tsdtp.llm.prefill_train import scorer_targets, train_scorers
from tsdtp.llm.prompts import few_shot_prompts
from tsdtp.measure.prefill_report import PrefillReportSettings, PrefillWorkload, record_prefill_report


def _numbers(kind: type) -> object:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return parse


def _schedule(text: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """`6:0.5,14:0.25` as (layers, ratios)."""
    try:
        steps = [step.split(":") for step in text.split(",") if step.strip()]
        return tuple(int(layer) for layer, _ in steps), tuple(float(ratio) for _, ratio in steps)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAYER:RATIO,... such as 6:0.5,14:0.25, got {text!r}") from None


def _ranking_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of how tokens are ranked, shared by both commands (defaults: the setting measured best)."""
    parser.add_argument("--last-queries", type=int, default=DEFAULT_RANKING["last_queries"],
                        help="last prompt tokens whose attention ranks")
    parser.add_argument("--keep-last", type=int, default=DEFAULT_RANKING["keep_last"],
                        help="last prompt tokens never pruned")
    parser.add_argument("--pool", type=int, default=DEFAULT_RANKING["pool"],
                        help="odd width of the max-pooling of scores (1: none)")


def _model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of which model to load, shared by both commands."""
    parser.add_argument("--model", default=DEFAULT_LLM, help="a Llama-architecture causal LM (default %(default)s)")
    parser.add_argument("--classifier", type=Path, default=None,
                        help="an SST-2 run of `tsdtp llm-train` as the model instead: its trained head answers the "
                             "few-shot prompts (tsdtp.llm.classifier_causal)")


def _ranking(args: argparse.Namespace) -> dict[str, int]:
    return {"last_queries": args.last_queries, "keep_last": args.keep_last, "pool": args.pool}


def add_prefill_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp prefill` to the CLI's subparsers; the handler is `run_prefill_command`."""
    parser = subparsers.add_parser("prefill", help="quality and speed of pruned prefill on long prompts")
    _model_flags(parser)
    parser.add_argument("--lengths", type=_numbers(int), default=(512, 1024, 2048), help="prompt lengths in tokens")
    parser.add_argument("--final-keep", type=_numbers(float), default=(0.5,),
                        help="one progressive schedule per value: the prompt fraction left after the last pruning "
                             "('' for none; default %(default)s)")
    parser.add_argument("--steps-prune", type=int, default=4, help="pruning layers of a progressive schedule")
    parser.add_argument("--schedule", type=_schedule, action="append", default=None,
                        help="an explicit schedule LAYER:RATIO,... (repeatable; default 6:0.5,14:0.25)")
    _ranking_flags(parser)
    parser.add_argument("--scorers", type=Path, default=None,
                        help="trained task scorers (prefill-train): compare their schedule at gamma 0 and --gamma")
    parser.add_argument("--gamma", type=float, default=0.5, help="scorer weight when --scorers is given")
    parser.add_argument("--few-shot", type=int, default=50, help="few-shot SST-2 prompts per length (0: skip)")
    parser.add_argument("--passages", type=int, default=5, help="newstest2016 passages per length (0: skip)")
    parser.add_argument("--steps", type=int, default=32, help="greedy tokens compared after each passage")
    parser.add_argument("--speed-repeats", type=int, default=3, help="timed repeats per length (0: skip)")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens generated per timed call")
    parser.add_argument("--threads", dest="prefill_threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--gguf", type=Path, default=None,
                        help="also time llama.cpp on this GGUF file (default: the model's packaged GGUF, if any)")
    parser.add_argument("--no-llama-cpp", action="store_true", help="do not time llama.cpp")
    parser.add_argument("--data-dir", default=None, help="the shared data folder (default: TSDTP_DATA_DIR)")
    parser.add_argument("--tables-dir", type=Path, default=Path("reports/data"))
    parser.set_defaults(handler=run_prefill_command)
    return parser


def _settings(args: argparse.Namespace, num_layers: int, trained: PrefillPruning | None) -> dict[str, PrefillPruning]:
    """`settings_to_compare` from the flags; with trained scorers, dense and their schedule without and with them."""
    if trained is None:
        return settings_to_compare(num_layers, args.final_keep, args.steps_prune, args.schedule, **_ranking(args))
    schedules = [trained.replace(gamma=0.0), trained.replace(gamma=args.gamma)]
    return {"dense": PrefillPruning()} | {schedule.title(): schedule for schedule in schedules}


def _gguf(args: argparse.Namespace) -> Path | None:
    """The GGUF file llama.cpp is timed on: --gguf, else the model's packaged one; None with --no-llama-cpp or
    --classifier (no GGUF holds a fine-tuned run's weights)."""
    if args.no_llama_cpp or args.classifier:
        return None
    return args.gguf or packaged_gguf(args.model)


def _data_dir(args: argparse.Namespace) -> Path:
    return require_data_dir(args.data_dir, f"tsdtp {args.command}", "--data-dir")


def run_prefill_command(args: argparse.Namespace) -> int:
    """Run `tsdtp prefill` from parsed arguments; prints both tables' new rows."""
    data_dir = _data_dir(args)
    torch.set_num_threads(args.prefill_threads)
    model, tokenizer, label = load_prefill_model(args.model, args.classifier)
    scorers, trained = load_scorers(args.scorers, model.config.hidden_size) if args.scorers else (None, None)
    settings = _settings(args, model.config.num_hidden_layers, trained)
    work = PrefillWorkload(model, tokenizer, label, settings, scorers)
    report = PrefillReportSettings(args.lengths, args.few_shot, args.passages, args.steps, args.speed_repeats,
                                   args.prefill_threads, _gguf(args), args.tables_dir, args.new_tokens)
    quality, speed = record_prefill_report(work, report, data_dir)
    for row in quality + speed:
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()})
    return 0


def add_prefill_train_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp prefill-train` to the CLI's subparsers; the handler is `run_prefill_train_command`."""
    parser = subparsers.add_parser("prefill-train", help="train the task scorers of TS-DTP's prefill variant")
    _model_flags(parser)
    parser.add_argument("--out", type=Path, required=True, help="where the trained scorers go (.pt)")
    parser.add_argument("--length", type=int, default=512, help="tokens of each training prompt")
    parser.add_argument("--prompts", type=int, default=24, help="training prompts (queries from SST-2 train)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--final-keep", type=float, default=0.25, help="the progressive schedule's final keep")
    parser.add_argument("--steps-prune", type=int, default=4, help="pruning layers of the schedule")
    _ranking_flags(parser)
    parser.add_argument("--d-task", type=int, default=128, help="width of the scorers' projections")
    parser.add_argument("--threads", dest="prefill_threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--data-dir", default=None, help="the shared data folder (default: TSDTP_DATA_DIR)")
    parser.set_defaults(handler=run_prefill_train_command)
    return parser


def run_prefill_train_command(args: argparse.Namespace) -> int:
    """Run `tsdtp prefill-train`: targets from dense prefills, then the scorers' epochs; saves them."""
    data_dir = _data_dir(args)
    torch.set_num_threads(args.prefill_threads)
    model, tokenizer, _ = load_prefill_model(args.model, args.classifier)
    pruning = progressive_schedule(model.config.num_hidden_layers, args.final_keep, args.steps_prune,
                                   d_task=args.d_task, **_ranking(args))
    started = time.perf_counter()
    prompts = few_shot_prompts(tokenizer, data_dir, args.length, args.prompts, queries_from="train")
    examples = [scorer_targets(model, prompt.input_ids, pruning) for prompt in prompts]
    print(f"prefill-train: targets of {len(examples)} prompts in {time.perf_counter() - started:.0f} s")
    scorers = make_scorers(pruning, model.config.hidden_size)
    train_scorers(scorers, examples, pruning.last_queries, args.epochs, args.lr)
    save_scorers(scorers, pruning, args.out)
    print(f"prefill-train: scorers for {pruning.title()} saved to {args.out} "
          f"({time.perf_counter() - started:.0f} s in all)")
    return 0
