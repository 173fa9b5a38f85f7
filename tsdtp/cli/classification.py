"""The `tsdtp train` and `tsdtp eval` commands (classification), added to the main parser by
`add_classification_commands`."""

from __future__ import annotations

import argparse

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.report import evaluate_run
from tsdtp.classification.train import train
from tsdtp.cli.flags import (
    add_evaluation_flags,
    add_setting_flags,
    add_split_flag,
    add_training_flags,
    flag_values,
    train_with_flags,
)
from tsdtp.core.config import PruningConfig
from tsdtp.glue_tasks import TASKS
from tsdtp.runs.io import strict_json

CLASSIFICATION_COMMANDS: tuple[str, ...] = ("train", "eval")
"""The subcommands `add_classification_commands` adds."""


def add_classification_commands(commands: argparse._SubParsersAction) -> None:
    """Add `train` and `eval` to the `tsdtp` subcommands; their settings flags come from the config fields."""
    training = commands.add_parser("train", help="fine-tune one configuration into a run directory (under torchrun: "
                                                 "on every process it starts)")
    add_training_flags(training, "GLUE-layout folder (default: $TSDTP_DATA_DIR, else hub)")
    add_setting_flags(training, TrainConfig, TrainConfig(), choices={"task": sorted(TASKS)})
    add_setting_flags(training, PruningConfig, PruningConfig())

    evaluate = commands.add_parser("eval", help="evaluate a run, optionally under another method or k")
    add_evaluation_flags(evaluate, "append the row to this results.csv",
                         "measure speedup vs the fastest dense baseline (0: skip)")
    add_split_flag(evaluate)


def run_classification_command(args: argparse.Namespace) -> int:
    """Run `train` or `eval` from parsed arguments and print the final metrics as JSON; returns the exit status."""
    pruning_flags = flag_values(args, PruningConfig)
    if args.command == "train":
        config = TrainConfig(pruning=PruningConfig().with_overrides(pruning_flags), **flag_values(args, TrainConfig))
        train_with_flags(train, config, args)
    elif args.command == "eval":
        record = evaluate_run(args.run_dir, args.data_dir, pruning_flags, args.results, args.batch_size,
                              args.max_eval_samples, args.speed_repeats, split=args.split)
        print(strict_json({key: value for key, value in record.items() if key != "pruning"}))
    else:
        raise ValueError(f"not a classification command: {args.command}")
    return 0
