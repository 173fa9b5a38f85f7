"""`tsdtp train-config`: train the run a config file describes (a run's config.json, of any task), e.g. under
torchrun; the pipeline's `launcher` runs its training steps this way (`tsdtp.runs.launch`)."""

from __future__ import annotations

import argparse

from tsdtp.cli.flags import add_training_flags, train_with_flags
from tsdtp.runs.cache import read_config_file
from tsdtp.runs.kinds import kind_of_config


def add_train_config_command(commands: argparse._SubParsersAction) -> None:
    """Add `train-config` to the `tsdtp` subcommands."""
    parser = commands.add_parser("train-config", help="train the run a config.json describes (classification or "
                                                      "translation; under torchrun: on every process it starts)")
    parser.add_argument("config", help="a run's config.json (its task says which kind of run)")
    add_training_flags(parser, "data folder (default: $TSDTP_DATA_DIR, else the hub)")


def run_train_config_command(args: argparse.Namespace) -> int:
    """Train the config file's run and print its final metrics as JSON (rank 0 only); returns the exit status."""
    config = read_config_file(args.config)
    train_with_flags(kind_of_config(config).train, config, args)
    return 0
