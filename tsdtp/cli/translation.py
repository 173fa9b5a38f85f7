"""The `tsdtp mt-train` and `tsdtp mt-eval` commands, added to the main parser by `add_translation_commands`.

Heavy modules (transformers, sacrebleu) are imported only when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from tsdtp.core.config import PruningConfig
from tsdtp.errors import ConfigError
from tsdtp.translation.config import MT_PRUNING_DEFAULTS, SCRATCH, TRAIN_CORPORA, MTConfig
from tsdtp.translation.data import EVAL_CORPORA

TRANSLATION_COMMANDS: tuple[str, ...] = ("mt-train", "mt-eval")
"""The subcommands `add_translation_commands` adds."""

ARCHITECTURE = ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "attention_heads", "ffn_dim",
                "dropout", "activation")
OPTIMISATION = ("epochs", "max_tokens", "lr", "scorer_lr", "weight_decay", "warmup_ratio", "label_smoothing",
                "max_source_length", "max_target_length", "max_train_samples", "val_samples", "eval_batch_size",
                "seed", "save_every", "hard_ratio")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def add_translation_commands(commands: argparse._SubParsersAction) -> None:
    """Add `mt-train` and `mt-eval` to the `tsdtp` subcommands."""
    from tsdtp.cli import add_pruning_args

    defaults = MTConfig()
    train = commands.add_parser("mt-train", help="train an English-German translator (dense, or pruning-aware)")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--data-dir", default=None,
                       help="folder holding wmt16_en_de/ (default: $TSDTP_DATA_DIR, else the hub's wmt16)")
    train.add_argument("--model", default=SCRATCH,
                       help="'scratch' (train model and tokenizer here), a hub id such as "
                            "Helsinki-NLP/opus-mt-en-de, or a model folder")
    train.add_argument("--corpora", type=_names, default=defaults.train_corpora,
                       help=f"comma-separated training corpora from {', '.join(TRAIN_CORPORA)}")
    train.add_argument("--init-from", default=None, help="start from this translation run's model and tokenizer")
    for name in (*ARCHITECTURE, *OPTIMISATION):
        value = getattr(defaults, name)
        kind = str if isinstance(value, str) else (float if isinstance(value, float) else int)
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    add_pruning_args(train, defaults=True)
    train.set_defaults(**MT_PRUNING_DEFAULTS)

    evaluate = commands.add_parser("mt-eval", help="translate the test sets with a run, under any method or k")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--splits", type=_names, default=EVAL_CORPORA,
                          help=f"comma-separated test sets (default {','.join(EVAL_CORPORA)})")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--beams", type=int, default=4)
    evaluate.add_argument("--max-eval-samples", type=int, default=None)
    evaluate.add_argument("--results", default=None, help="upsert rows into this results.csv")
    evaluate.add_argument("--speed-repeats", type=int, default=0, help="time generation vs dense (0: skip)")
    evaluate.add_argument("--speed-samples", type=int, default=256)
    evaluate.add_argument("--latency-samples", type=int, default=32)
    evaluate.add_argument("--trace-samples", type=int, default=200, help="sentences with keep traces per split")
    add_pruning_args(evaluate, defaults=False)


def run_translation_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run `mt-train` or `mt-eval` from parsed arguments; returns what to print."""
    from tsdtp.cli import pruning_overrides

    if args.command == "mt-train":
        from tsdtp.translation.train import train_translation

        fields = {name: getattr(args, name) for name in (*ARCHITECTURE, *OPTIMISATION)}
        config = MTConfig(model=args.model, train_corpora=args.corpora, init_from=args.init_from,
                          pruning=PruningConfig(**pruning_overrides(args)), **fields)
        return train_translation(config, args.run_dir, args.data_dir)["final"]
    if args.command == "mt-eval":
        from tsdtp.translation.report import evaluate_translation

        if args.beams < 1 or args.batch_size < 1:
            raise ConfigError("--beams and --batch-size must be >= 1")
        record = evaluate_translation(args.run_dir, args.data_dir, pruning_overrides(args), args.results,
                                      args.splits, args.batch_size, args.beams, args.max_eval_samples,
                                      args.speed_repeats, args.speed_samples, args.latency_samples,
                                      args.trace_samples)
        return {"splits": record["splits"], "speed": record["speed"]}
    raise ValueError(f"not a translation command: {args.command}")
