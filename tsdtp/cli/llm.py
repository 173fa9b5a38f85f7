"""The `tsdtp llm-train` and `tsdtp llm-eval` commands (classification with a decoder-only model), added to the
main parser by `add_llm_commands`."""

from __future__ import annotations

import argparse

from tsdtp.cli.flags import (
    add_setting_flags,
    add_split_flag,
    add_training_flags,
    at_least,
    flag_values,
    train_with_flags,
)
from tsdtp.core.config import PruningConfig
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_evaluate import evaluate_llm_run
from tsdtp.llm.classifier_train import train_llm
from tsdtp.runs.io import strict_json

LLM_COMMANDS: tuple[str, ...] = ("llm-train", "llm-eval")
"""The subcommands `add_llm_commands` adds."""


def add_llm_commands(commands: argparse._SubParsersAction) -> None:
    """Add `llm-train` and `llm-eval`; their settings flags come from the config fields."""
    training = commands.add_parser("llm-train", help="LoRA-fine-tune a Llama-architecture classifier (SmolLM2 by "
                                                     "default), dense or pruning-aware, into a run directory "
                                                     "(under torchrun: on every process it starts)")
    add_training_flags(training, "GLUE-layout folder (default: $TSDTP_DATA_DIR, else hub)")
    add_setting_flags(training, LlmTrainConfig, LlmTrainConfig())
    add_setting_flags(training, PruningConfig, PruningConfig())

    evaluate = commands.add_parser("llm-eval", help="evaluate an LLM run, optionally under another method or k")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--data-dir", default=None, help="data folder (default: $TSDTP_DATA_DIR, else the hub)")
    evaluate.add_argument("--batch-size", type=at_least(1), default=16)
    evaluate.add_argument("--max-eval-samples", type=at_least(1), default=None,
                          help="evaluate the first N examples (default: the run's own limit, else all)")
    evaluate.add_argument("--results", default=None, help="upsert the row into this results.csv")
    evaluate.add_argument("--speed-repeats", type=at_least(0), default=0,
                          help="> 0: also time the pruned forward against the dense ones (medians over repeats)")
    add_split_flag(evaluate)
    add_setting_flags(evaluate, PruningConfig, None)


def run_llm_command(args: argparse.Namespace) -> int:
    """Run `llm-train` or `llm-eval` from parsed arguments and print the final metrics as JSON."""
    pruning_flags = flag_values(args, PruningConfig)
    if args.command == "llm-train":
        config = LlmTrainConfig(pruning=PruningConfig().with_overrides(pruning_flags),
                                **flag_values(args, LlmTrainConfig))
        train_with_flags(train_llm, config, args)
    elif args.command == "llm-eval":
        record = evaluate_llm_run(args.run_dir, args.data_dir, pruning_flags, args.results, args.batch_size,
                                  args.max_eval_samples, split=args.split, speed_repeats=args.speed_repeats)
        print(strict_json({key: value for key, value in record.items() if key != "pruning"}))
    else:
        raise ValueError(f"not an LLM command: {args.command}")
    return 0
