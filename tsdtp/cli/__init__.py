"""The `tsdtp` command: builds the parser from the command groups, dispatches, and reports user errors in one line.

Groups: `classification` (train, eval), `translation` (mt-train, mt-eval), `bench`, `profile`, and
`reproduce` (`tsdtp.pipeline.runner`), `predict` (labels for one's own text), `prefill` and `prefill-train`
(pruned prefill of long prompts in a Llama model: quality and speed; its task scorers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

import torch

from tsdtp.cli.bench import add_bench_command, run_bench_command
from tsdtp.cli.classification import (
    CLASSIFICATION_COMMANDS,
    add_classification_commands,
    run_classification_command,
)
from tsdtp.cli.flags import at_least
from tsdtp.cli.predict import add_predict_command, run_predict_command
from tsdtp.cli.prefill import (
    add_prefill_command,
    add_prefill_train_command,
    run_prefill_command,
    run_prefill_train_command,
)
from tsdtp.cli.profile import add_profile_command, run_profile_command
from tsdtp.cli.reproduce import add_reproduce_command, reproduce_command
from tsdtp.cli.translation import TRANSLATION_COMMANDS, add_translation_commands, run_translation_command
from tsdtp.errors import TsdtpError

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    **dict.fromkeys(CLASSIFICATION_COMMANDS, run_classification_command),
    **dict.fromkeys(TRANSLATION_COMMANDS, run_translation_command),
    "reproduce": reproduce_command,
    "bench": run_bench_command,
    "profile": run_profile_command,
    "predict": run_predict_command,
    "prefill": run_prefill_command,
    "prefill-train": run_prefill_train_command,
}
"""The function that runs each subcommand; it returns the exit status."""


class UsageError(TsdtpError):
    """A command line that the parser refuses; `prog` is the (sub)command it was refused by."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (`main` prints them), without the usage block; its
    subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        """Raise UsageError instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see `{self.prog} --help`)", self.prog)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `tsdtp` command."""
    parser = OneLineParser(prog="tsdtp", description="Task-specific dynamic token pruning workbench")
    parser.add_argument("--threads", type=at_least(1), default=None,
                        help="torch CPU threads, >= 1 (default: torch's choice)")
    commands = parser.add_subparsers(dest="command", required=True)
    add_classification_commands(commands)
    add_translation_commands(commands)
    add_reproduce_command(commands)
    add_bench_command(commands)
    add_profile_command(commands)
    add_predict_command(commands)
    add_prefill_command(commands)
    add_prefill_train_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors (the command line's too) print one clear line and exit 2."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return HANDLERS[args.command](args)
    except TsdtpError as error:
        print(f"tsdtp {args.command}: error: {error}", file=sys.stderr)
        return 2

