"""The command line: settings flags are derived from the config fields, with their types, defaults and bounds."""

from __future__ import annotations

import argparse
import dataclasses

from tsdtp.classification.config import TrainConfig
from tsdtp.cli import build_parser, main
from tsdtp.cli.flags import add_setting_flags, flag_values
from tsdtp.core.config import PruningConfig
from tsdtp.core.settings import Settings, setting
from tsdtp.translation.config import MT_PRUNING_DEFAULTS, MTConfig


def subcommand(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_every_config_field_has_a_flag_with_the_config_default():
    args = subcommand("train").parse_args(["--run-dir", "runs/x"])
    expected = {f.name: getattr(TrainConfig(), f.name) for f in dataclasses.fields(TrainConfig) if f.name != "pruning"}
    assert flag_values(args, TrainConfig) == {name: value for name, value in expected.items() if value is not None}
    pruning = {f.name: getattr(PruningConfig(), f.name) for f in dataclasses.fields(PruningConfig)}
    assert flag_values(args, PruningConfig) == {name: value for name, value in pruning.items()
                                                if value is not None and name not in ("gamma", "seed")}
    mt = subcommand("mt-train").parse_args(["--run-dir", "x", "--corpora", "multi30k, news-dev",
                                            "--prune-layers", "1,2"])
    assert flag_values(mt, MTConfig)["train_corpora"] == ("multi30k", "news-dev")
    assert flag_values(mt, MTConfig)["max_tokens"] == MTConfig().max_tokens and "task" not in flag_values(mt, MTConfig)
    assert flag_values(mt, PruningConfig)["prune_layers"] == (1, 2)
    assert {key: getattr(mt, key) for key in MT_PRUNING_DEFAULTS} == MT_PRUNING_DEFAULTS


def test_eval_flags_default_to_not_given():
    for command in ("eval", "mt-eval"):
        assert flag_values(subcommand(command).parse_args(["--run-dir", "x"]), PruningConfig) == {}
    args = subcommand("eval").parse_args(["--run-dir", "x", "--method", "topk", "--k", "0"])
    assert flag_values(args, PruningConfig) == {"method": "topk", "k": 0.0}


def test_help_shows_the_declared_bounds_and_a_bound_gives_one_clear_error(tmp_path, capsys):
    text = subcommand("train").format_help()
    assert "learning rate of the model; in (0, 1)" in text and ">= -3" in text
    assert main(["train", "--run-dir", str(tmp_path), "--k", "-9"]) == 2
    assert capsys.readouterr().err.strip() == "tsdtp train: error: k must be a number >= -3 (got -9.0)"
    assert main(["mt-train", "--run-dir", str(tmp_path), "--vocab-size", "10"]) == 2
    assert "vocab_size must be in [256, 64000] (got 10)" in capsys.readouterr().err
    assert main(["mt-train", "--run-dir", str(tmp_path), "--activation", "tanh"]) == 2
    assert capsys.readouterr().err == ("tsdtp mt-train: error: argument --activation: invalid choice: 'tanh' (choose "
                                       "from 'relu', 'gelu', 'swish') (see `tsdtp mt-train --help`)\n")


def test_a_new_field_gets_its_flag_from_its_declaration():
    @dataclasses.dataclass(frozen=True)
    class Demo(Settings):
        width: int = setting(4, low=1, help="how wide")
        names: tuple[str, ...] = setting(("a",), choices=("a", "b"), flag="pick", help="names")
        hidden: int = setting(0, flag=False, help="not on the command line")

    parser = argparse.ArgumentParser()
    add_setting_flags(parser, Demo, Demo())
    args = parser.parse_args(["--width", "7", "--pick", "b,a"])
    assert Demo(**flag_values(args, Demo)) == Demo(width=7, names=("b", "a"))
    assert "--hidden" not in parser.format_help() and "how wide; >= 1" in parser.format_help()
