"""Command-line flags derived from the settings dataclasses: one flag per declared field, with its help and bounds.

`add_setting_flags(parser, TrainConfig, TrainConfig())` adds `--epochs`, `--batch-size`, ... with the
types, defaults, choices and help text of the fields' `setting(...)` declarations (`tsdtp.core.settings`);
`flag_values(args, TrainConfig)` collects the values given back. Bounds are shown in the help and enforced
when the config is built, so a bad value is one clear `tsdtp <command>: error: ...` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tsdtp.core.config import PruningConfig
from tsdtp.core.settings import Rule, Settings, field_types, nested_settings, rule_of
from tsdtp.runs.device import TRAINING_DEVICES, training_device
from tsdtp.runs.distributed import DEFAULT_TIMEOUT_S, process_group
from tsdtp.runs.io import strict_json
from tsdtp.runs.selection import SPLITS


def ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers, e.g. `1,2,3`."""
    return tuple(int(item) for item in text.split(",") if item)


def floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers, e.g. `0.9,0.7`."""
    return tuple(float(item) for item in text.split(",") if item)


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, spaces around them ignored."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type for whole numbers >= `low`; a smaller one is a usage error naming the range."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low} (got {value})")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_seconds(text: str) -> float:
    """An argparse type for a duration in seconds, > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 (got {text})")
    return value


def add_training_flags(parser: argparse.ArgumentParser, data_help: str) -> None:
    """The flags the training commands share: the run directory, keeping its state, the data, accumulation, the
    process group timeout and the device."""
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--keep-state", action="store_true",
                        help="keep state.pt (optimizer and progress, about 3x the model) when the run finishes")
    parser.add_argument("--data-dir", default=None, help=data_help)
    parser.add_argument("--grad-accum", type=at_least(1), default=1, metavar="N",
                        help="run each batch in N accumulation steps (under torchrun: each process's part of it); "
                             "an execution choice like the number of processes, not part of the run's config")
    parser.add_argument("--dist-timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="under torchrun: how long a process waits for the others before the job stops with "
                             f"an error naming the rank that failed or hung (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--device", choices=TRAINING_DEVICES, default="cpu",
                        help="train on the CPU (default), a CUDA GPU (under torchrun: GPU LOCAL_RANK of each node, "
                             "over NCCL), or auto (a GPU where torch sees one); an execution choice, not part of "
                             "the run's config")


def train_with_flags(train: Callable[..., dict[str, Any]], config: Any, args: argparse.Namespace) -> None:
    """`train(config, ...)` as the training flags say (device, process group, accumulation); rank 0 prints the
    final metrics as JSON."""
    device = training_device(args.device)
    with process_group(args.dist_timeout, device) as ranks:
        metrics = train(config, args.run_dir, args.data_dir, keep_state=args.keep_state, grad_accum=args.grad_accum,
                        device=device)
    if ranks.main:
        print(strict_json(metrics["final"]))


def add_evaluation_flags(parser: argparse.ArgumentParser, results_help: str, speed_help: str) -> None:
    """The flags every evaluation command shares: the run, its data, batching, the results table, timing, and
    the pruning settings to evaluate under (unset: the trained ones)."""
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-dir", default=None, help="data folder (default: $TSDTP_DATA_DIR, else the hub)")
    parser.add_argument("--batch-size", type=at_least(1), default=64)
    parser.add_argument("--max-eval-samples", type=at_least(1), default=None,
                        help="evaluate the first N examples (default: all, or the run's own limit)")
    parser.add_argument("--results", default=None, help=results_help)
    parser.add_argument("--speed-repeats", type=at_least(0), default=0, help=speed_help)
    add_setting_flags(parser, PruningConfig, None)


PARSERS: dict[Any, Callable[[str], Any] | None] = {
    int: int, float: float, str: None, tuple[int, ...]: ints, tuple[float, ...]: floats, tuple[str, ...]: names,
}
"""How a flag's text becomes a field's type (None: argparse keeps the text)."""


def add_split_flag(parser: argparse.ArgumentParser) -> None:
    """`--split`: the task's evaluation split, or the run's held-out selection split (`tsdtp.runs.selection`)."""
    parser.add_argument("--split", choices=SPLITS, default="eval",
                        help="evaluate on the task's evaluation split, or on the run's held-out selection split "
                             "(train --selection-fraction) to choose settings without peeking")


def _without_none(hint: Any) -> Any:
    """`int | None` -> `int`; other hints unchanged."""
    if isinstance(hint, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kind
    return hint


def flag_fields(settings: type[Settings]) -> list[dataclasses.Field]:
    """The fields of `settings` that have a flag (nested settings and `flag=False` fields have none)."""
    hints = field_types(settings)
    return [item for item in dataclasses.fields(settings)  # type: ignore[arg-type]
            if (rule := rule_of(item)) is not None and rule.flag is not False
            and nested_settings(hints[item.name]) is None]


def flag_name(item: dataclasses.Field) -> str:
    """The flag of a settings field without its dashes: `batch_size`, or the name its rule gives (`corpora`)."""
    rule = rule_of(item)
    return rule.flag if rule is not None and isinstance(rule.flag, str) else item.name


def _help(rule: Rule, listed: bool) -> str:
    """The rule's help text with its bounds, and its choices where argparse does not list them (tuples)."""
    extra = [rule.span()] if rule.span() else []
    if listed and rule.choices:
        extra.append(f"of {', '.join(rule.choices)}")
    return "; ".join([rule.help, *extra])


def add_setting_flags(parser: argparse.ArgumentParser, settings: type[Settings], defaults: Settings | None,
                      choices: Mapping[str, Sequence[str]] | None = None) -> None:
    """Add one flag per flagged field of `settings`.

    A flag defaults to the field's value in `defaults`; with `defaults=None`, and for fields resolved from
    other settings (gamma), it defaults to None ("not given"). `choices` overrides a field's choices on the
    command line only (e.g. the task names of the registry).
    """
    for item in flag_fields(settings):
        rule = rule_of(item)
        assert rule is not None
        kind = _without_none(field_types(settings)[item.name])
        listed = typing.get_origin(kind) is tuple
        options = (choices or {}).get(item.name, None if listed else rule.choices)
        default = None if defaults is None or rule.resolved else getattr(defaults, item.name)
        name = flag_name(item)
        parser.add_argument("--" + name.replace("_", "-"), dest=item.name, type=PARSERS[kind], default=default,
                            choices=options, metavar=None if options else name.upper(), help=_help(rule, listed))


def flag_values(args: argparse.Namespace, settings: type[Settings]) -> dict[str, Any]:
    """The values of the flags of `settings` that were given or have a default (None: not given)."""
    values = {item.name: getattr(args, item.name) for item in flag_fields(settings)}
    return {name: value for name, value in values.items() if value is not None}
