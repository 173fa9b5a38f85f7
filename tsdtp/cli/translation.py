"""The `tsdtp mt-train`, `tsdtp mt-eval` and `tsdtp mt-compare` commands (translation), added to the main parser by
`add_translation_commands`."""

from __future__ import annotations

import argparse

from tsdtp.cli.flags import (
    add_evaluation_flags,
    add_setting_flags,
    add_training_flags,
    at_least,
    flag_values,
    names,
    train_with_flags,
)
from tsdtp.core.config import PruningConfig
from tsdtp.runs.io import strict_json
from tsdtp.translation.compare import compare_systems
from tsdtp.translation.config import MT_PRUNING_DEFAULTS, MTConfig
from tsdtp.translation.data import EVAL_CORPORA
from tsdtp.translation.report import evaluate_translation
from tsdtp.translation.train import train_translation

TRANSLATION_COMMANDS: tuple[str, ...] = ("mt-train", "mt-eval", "mt-compare")
"""The subcommands `add_translation_commands` adds."""


def add_translation_commands(commands: argparse._SubParsersAction) -> None:
    """Add `mt-train`, `mt-eval` and `mt-compare` to the `tsdtp` subcommands; settings flags come from the config
    fields."""
    training = commands.add_parser("mt-train", help="train an English-German translator (dense, or pruning-aware; "
                                                    "under torchrun: on every process it starts)")
    add_training_flags(training, "folder holding wmt16_en_de/ (default: $TSDTP_DATA_DIR, else the hub's wmt16)")
    add_setting_flags(training, MTConfig, MTConfig())
    add_setting_flags(training, PruningConfig, PruningConfig().replace(**MT_PRUNING_DEFAULTS))

    evaluate = commands.add_parser("mt-eval", help="translate the test sets with a run, under any method or k")
    add_evaluation_flags(evaluate, "upsert rows into this results.csv", "time generation vs dense (0: skip)")
    evaluate.add_argument("--splits", type=names, default=EVAL_CORPORA,
                          help=f"comma-separated test sets (default {','.join(EVAL_CORPORA)})")
    evaluate.add_argument("--beams", type=at_least(1), default=4)
    evaluate.add_argument("--speed-samples", type=at_least(1), default=256)
    evaluate.add_argument("--latency-samples", type=at_least(0), default=32)
    evaluate.add_argument("--trace-samples", type=at_least(0), default=200,
                          help="sentences with keep traces per split")

    compare = commands.add_parser("mt-compare", help="paired bootstrap of the BLEU and chrF difference of two "
                                                     "evaluated systems on one test set (sacreBLEU)")
    compare.add_argument("system_a", help="a run directory (its own trained setting) or an eval/<name>.<split>.txt")
    compare.add_argument("system_b", help="the same for the second system")
    compare.add_argument("--split", default=EVAL_CORPORA[0], help=f"test set (default {EVAL_CORPORA[0]})")
    compare.add_argument("--data-dir", default=None)
    compare.add_argument("--samples", type=at_least(10), default=1000, help="bootstrap resamples")


def run_translation_command(args: argparse.Namespace) -> int:
    """Run `mt-train`, `mt-eval` or `mt-compare` from parsed arguments and print the figures as JSON; returns the exit
    status."""
    if args.command == "mt-compare":
        print(strict_json(compare_systems(args.system_a, args.system_b, args.split, args.data_dir, args.samples)))
        return 0
    pruning_flags = flag_values(args, PruningConfig)
    if args.command == "mt-train":
        config = MTConfig(pruning=PruningConfig().with_overrides(pruning_flags), **flag_values(args, MTConfig))
        train_with_flags(train_translation, config, args)
    elif args.command == "mt-eval":
        record = evaluate_translation(args.run_dir, args.data_dir, pruning_flags, args.results, args.splits,
                                      args.batch_size, args.beams, args.max_eval_samples, args.speed_repeats,
                                      args.speed_samples, args.latency_samples, args.trace_samples)
        print(strict_json({"splits": record["splits"], "speed": record["speed"]}))
    else:
        raise ValueError(f"not a translation command: {args.command}")
    return 0
