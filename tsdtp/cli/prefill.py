"""`tsdtp prefill`: quality and speed of pruned prefill on long prompts (`tsdtp.measure.prefill_report`).

Settings compared: dense, then one progressive LazyLLM schedule per `--final-keep` (`progressive_schedule`:
`--steps-prune` pruning layers from 15% to 75% of the depth, the kept fraction falling geometrically to the
final keep), or the one schedule `--prune-layers` with `--keep-ratios` spell out. `--scorers` adds TS-DTP's
trained task scorers at `--gamma`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tsdtp.data_files import data_dir_from_env
from tsdtp.errors import DataError
from tsdtp.gguf_models import DEFAULT_LLM
from tsdtp.hub import load_causal_lm, short_model_name
from tsdtp.llm.prefill_config import PrefillPruning, progressive_schedule
from tsdtp.llm.prefill_scorers import load_scorers
from tsdtp.measure.prefill_report import PrefillReportSettings, PrefillWorkload, record_prefill_report


def _numbers(kind: type) -> object:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return parse


def add_prefill_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp prefill` to the CLI's subparsers; the handler is `run_prefill_command`."""
    parser = subparsers.add_parser("prefill", help="quality and speed of pruned prefill on long prompts")
    parser.add_argument("--model", default=DEFAULT_LLM, help="a Llama-architecture causal LM (default %(default)s)")
    parser.add_argument("--lengths", type=_numbers(int), default=(512, 1024, 2048), help="prompt lengths in tokens")
    parser.add_argument("--final-keep", type=_numbers(float), default=(0.25,),
                        help="one progressive schedule per value: the prompt fraction left after the last pruning")
    parser.add_argument("--steps-prune", type=int, default=4, help="pruning layers of a progressive schedule")
    parser.add_argument("--prune-layers", type=_numbers(int), default=None, help="an explicit schedule's layers")
    parser.add_argument("--keep-ratios", type=_numbers(float), default=None, help="an explicit schedule's ratios")
    parser.add_argument("--last-queries", type=int, default=1, help="last prompt tokens whose attention ranks")
    parser.add_argument("--scorers", type=Path, default=None, help="trained task scorers (TS-DTP variant)")
    parser.add_argument("--gamma", type=float, default=0.5, help="scorer weight when --scorers is given")
    parser.add_argument("--few-shot", type=int, default=50, help="few-shot SST-2 prompts per length (0: skip)")
    parser.add_argument("--passages", type=int, default=5, help="newstest2016 passages per length (0: skip)")
    parser.add_argument("--steps", type=int, default=32, help="greedy tokens compared after each passage")
    parser.add_argument("--speed-repeats", type=int, default=3, help="timed repeats per length (0: skip)")
    parser.add_argument("--threads", dest="prefill_threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--gguf", type=Path, default=None, help="also time llama.cpp on this GGUF file")
    parser.add_argument("--data-dir", default=None, help="the shared data folder (default: TSDTP_DATA_DIR)")
    parser.add_argument("--tables-dir", type=Path, default=Path("reports/data"))
    parser.set_defaults(handler=run_prefill_command)
    return parser


def _settings(args: argparse.Namespace, num_layers: int) -> dict[str, PrefillPruning]:
    extra = {"last_queries": args.last_queries}
    if args.scorers is not None:
        extra.update(gamma=args.gamma)
    if args.prune_layers is not None or args.keep_ratios is not None:
        schedules = [PrefillPruning(prune_layers=args.prune_layers or (), keep_ratios=args.keep_ratios or (), **extra)]
    else:
        schedules = [progressive_schedule(num_layers, keep, args.steps_prune, **extra) for keep in args.final_keep]
    return {"dense": PrefillPruning()} | {schedule.title(): schedule for schedule in schedules}


def run_prefill_command(args: argparse.Namespace) -> int:
    """Run `tsdtp prefill` from parsed arguments; prints both tables' new rows."""
    data_dir = data_dir_from_env(args.data_dir)
    if data_dir is None:
        raise DataError("tsdtp prefill builds its prompts from the shared data: give --data-dir or set TSDTP_DATA_DIR")
    torch.set_num_threads(args.prefill_threads)
    model, tokenizer = load_causal_lm(args.model, attn_implementation="sdpa")
    model.eval()
    scorers = None
    if args.scorers is not None:
        scorers, _ = load_scorers(args.scorers, model.config.hidden_size)
    settings = _settings(args, model.config.num_hidden_layers)
    work = PrefillWorkload(model, tokenizer, short_model_name(args.model), settings, scorers)
    report = PrefillReportSettings(args.lengths, args.few_shot, args.passages, args.steps, args.speed_repeats,
                                   args.prefill_threads, args.gguf, args.tables_dir)
    quality, speed = record_prefill_report(work, report, data_dir)
    for row in quality + speed:
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()})
    return 0
