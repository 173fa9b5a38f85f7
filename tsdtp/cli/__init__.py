"""The `tsdtp` command: builds the parser from the command groups, dispatches, and reports user errors in one line.

Groups: `classification` (train, eval), `translation` (mt-train, mt-eval), `llm` (llm-train, llm-eval),
`bench`, `profile`, and `reproduce` (`tsdtp.pipeline.runner`), `predict` (labels for one's own text),
`train-config` (the run a config.json describes), `prefill` and `prefill-train` (pruned prefill of long
prompts in a Llama model: quality and speed; its task scorers).
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
from tsdtp.cli.llm import LLM_COMMANDS, add_llm_commands, run_llm_command
from tsdtp.cli.predict import add_predict_command, run_predict_command
from tsdtp.cli.prefill import (
    add_prefill_command,
    add_prefill_train_command,
    run_prefill_command,
    run_prefill_train_command,
)
from tsdtp.cli.profile import add_profile_command, run_profile_command
from tsdtp.cli.reproduce import add_reproduce_command, reproduce_command
from tsdtp.cli.train_config import add_train_config_command, run_train_config_command
from tsdtp.cli.translation import TRANSLATION_COMMANDS, add_translation_commands, run_translation_command
from tsdtp.errors import TsdtpError
from tsdtp.runs.distributed import launched

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    **dict.fromkeys(CLASSIFICATION_COMMANDS, run_classification_command),
    **dict.fromkeys(TRANSLATION_COMMANDS, run_translation_command),
    **dict.fromkeys(LLM_COMMANDS, run_llm_command),
    "reproduce": reproduce_command,
    "bench": run_bench_command,
    "profile": run_profile_command,
    "predict": run_predict_command,
    "train-config": run_train_config_command,
    "prefill": run_prefill_command,
    "prefill-train": run_prefill_train_command,
}
"""The function that runs each subcommand; it returns the exit status."""

LAUNCHED_COMMANDS: tuple[str, ...] = ("train", "mt-train", "llm-train", "train-config")
"""The subcommands that run under torchrun, every process training the same run; the others run in one process."""


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
    add_llm_commands(commands)
    add_reproduce_command(commands)
    add_bench_command(commands)
    add_profile_command(commands)
    add_predict_command(commands)
    add_train_config_command(commands)
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
    if launched() and args.command not in LAUNCHED_COMMANDS:
        print(f"tsdtp {args.command}: error: runs in one process; of the launched processes, only "
              f"{', '.join(LAUNCHED_COMMANDS)} share the work (start it without torchrun)", file=sys.stderr)
        return 2
    try:
        return HANDLERS[args.command](args)
    except TsdtpError as error:
        print(f"tsdtp {args.command}: error: {error}", file=sys.stderr)
        return 2

