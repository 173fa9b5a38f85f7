"""The `tsdtp` command: train, eval (and the workbench commands)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.tasks import TASKS
from tsdtp.cli.bench import add_bench_command, run_bench_command
from tsdtp.cli.profile import add_profile_command, run_profile_command
from tsdtp.cli.reproduce import add_reproduce_command, reproduce_command
from tsdtp.cli.translation import (
    TRANSLATION_COMMANDS,
    add_translation_commands,
    run_translation_command,
)
from tsdtp.core.config import METHODS, TASK_AGNOSTIC_METHODS, PruningConfig
from tsdtp.errors import TsdtpError
from tsdtp.hub import DEFAULT_MODEL

PRUNING_FLAGS = ("method", "k", "gamma", "d_task", "prune_layers", "temperature", "lambda_aux", "lambda_keep",
                 "keep_target", "task_features", "topk_final_keep", "keep_schedule")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def add_pruning_args(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Flags for every PruningConfig field; with `defaults=False` unset flags stay None."""
    base = PruningConfig()
    value = (lambda v: v) if defaults else (lambda v: None)
    parser.add_argument("--method", choices=METHODS, default=value(base.method))
    parser.add_argument("--k", type=float, default=value(base.k), help="threshold width; smaller prunes more")
    parser.add_argument("--gamma", type=float, default=None,
                        help=f"task-attention weight (default {base.gamma}; 0 for general-dtp)")
    parser.add_argument("--d-task", type=int, default=value(base.d_task))
    parser.add_argument("--prune-layers", type=_ints, default=None, help="comma-separated 0-based layers")
    parser.add_argument("--temperature", type=float, default=value(base.temperature))
    parser.add_argument("--lambda-aux", type=float, default=value(base.lambda_aux))
    parser.add_argument("--lambda-keep", type=float, default=value(base.lambda_keep))
    parser.add_argument("--keep-target", type=float, default=value(base.keep_target))
    parser.add_argument("--task-features", choices=("hidden", "embeddings"), default=value(base.task_features))
    parser.add_argument("--topk-final-keep", type=float, default=value(base.topk_final_keep))
    parser.add_argument("--keep-schedule", type=_floats, default=None, help="comma-separated keep fractions")


def pruning_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The pruning flags that were given, with gamma defaulting to 0 for task-agnostic methods."""
    given = {name: getattr(args, name) for name in PRUNING_FLAGS if getattr(args, name) is not None}
    if "gamma" not in given and given.get("method") in TASK_AGNOSTIC_METHODS:
        given["gamma"] = 0.0
    return given


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `tsdtp` command."""
    parser = argparse.ArgumentParser(prog="tsdtp", description="Task-specific dynamic token pruning workbench")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune one configuration into a run directory")
    train.add_argument("--task", choices=sorted(TASKS), default="sst2")
    train.add_argument("--model", default=DEFAULT_MODEL)
    train.add_argument("--run-dir", required=True)
    train.add_argument("--data-dir", default=None, help="GLUE-layout folder (default: $TSDTP_DATA_DIR, else hub)")
    defaults = TrainConfig()
    for name in ("epochs", "lr", "scorer_lr", "weight_decay", "warmup_ratio", "hard_ratio"):
        train.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("batch_size", "eval_batch_size", "seed", "save_every"):
        train.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("max_length", "max_train_samples", "max_eval_samples"):
        train.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    train.add_argument("--init-from", default=None, help="start from this run's fine-tuned encoder and head")
    add_pruning_args(train, defaults=True)

    evaluate = commands.add_parser("eval", help="evaluate a run, optionally under another method or k")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--max-eval-samples", type=int, default=None)
    evaluate.add_argument("--results", default=None, help="append the row to this results.csv")
    evaluate.add_argument("--speed-repeats", type=int, default=0, help="measure speedup vs dense (0: skip)")
    add_pruning_args(evaluate, defaults=False)
    add_translation_commands(commands)
    add_reproduce_command(commands)
    add_bench_command(commands)
    add_profile_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.command == "train":
            from tsdtp.classification.train import train

            pruning = PruningConfig(**pruning_overrides(args))
            fields = ("task", "model", "epochs", "lr", "scorer_lr", "weight_decay", "warmup_ratio", "batch_size",
                      "eval_batch_size", "seed", "save_every", "max_length", "max_train_samples", "max_eval_samples",
                      "init_from", "hard_ratio")
            config = TrainConfig(pruning=pruning, **{name: getattr(args, name) for name in fields})
            print(json.dumps(train(config, args.run_dir, args.data_dir)["final"], indent=2))
        elif args.command == "eval":
            from tsdtp.classification.report import evaluate_run

            record = evaluate_run(args.run_dir, args.data_dir, pruning_overrides(args), args.results,
                                  args.batch_size, args.max_eval_samples, args.speed_repeats)
            print(json.dumps({k: v for k, v in record.items() if k != "pruning"}, indent=2))
        elif args.command == "bench":
            return run_bench_command(args)
        elif args.command == "profile":
            return run_profile_command(args)
        elif args.command == "reproduce":
            return reproduce_command(args)
        elif args.command in TRANSLATION_COMMANDS:
            print(json.dumps(run_translation_command(args), indent=2))
    except TsdtpError as error:
        print(f"tsdtp {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
