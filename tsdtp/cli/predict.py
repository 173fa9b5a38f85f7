"""The `tsdtp predict` command: a trained classification run's label, confidence and kept tokens for one's own text.

Texts come from the arguments, from `--file` (one per line), or from standard input when neither is given
(`--file -` reads it too). For a sentence-pair task such as QNLI each input is `text<TAB>pair`.
The Python side of the same thing is `tsdtp.load_run(run_dir).predict(texts)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsdtp.classification.predict import Predictor, load_run
from tsdtp.classification.prediction import Prediction, pruning_title
from tsdtp.cli.flags import add_setting_flags, flag_values
from tsdtp.core.config import PruningConfig
from tsdtp.errors import ConfigError, DataError
from tsdtp.runs.io import strict_json_value

STDIN = "-"
"""The `--file` value that means standard input."""


@dataclass(frozen=True)
class Inputs:
    """The texts to classify, their second texts (None: not given) and how errors name each one."""

    texts: list[str]
    pairs: list[str | None]
    sources: list[str]


def add_predict_command(commands: argparse._SubParsersAction) -> None:
    """Add `predict` to the `tsdtp` subcommands, with the pruning flags of `eval` (unset: the trained ones)."""
    parser = commands.add_parser(
        "predict", help="label your own text with a trained classification run and show the tokens each layer kept",
        description="Label texts with a trained run; for a pair task (QNLI) give each input as text<TAB>pair.")
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="texts to classify (default: --file, else one per line from standard input)")
    parser.add_argument("--run-dir", required=True, help="a classification run directory (with checkpoint.pt)")
    parser.add_argument("--file", default=None, help="read one input per line from this UTF-8 file (- : standard "
                                                     "input); pair tasks: text<TAB>pair")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_setting_flags(parser, PruningConfig, None)


def run_predict_command(args: argparse.Namespace) -> int:
    """Read the inputs, predict, and print the results as text or JSON; returns the exit status."""
    inputs = read_inputs(args.texts, args.file)
    predictor = load_run(args.run_dir)
    predictions = predictor.predict(inputs.texts, inputs.pairs, sources=inputs.sources,
                                    **flag_values(args, PruningConfig))
    if args.json:
        print(json.dumps(strict_json_value(json_report(args.run_dir, predictor, predictions)), indent=2,
                         ensure_ascii=False, allow_nan=False))
    else:
        print(text_report(predictor, predictions))
    return 0


def read_inputs(arguments: Sequence[str], file: str | None) -> Inputs:
    """The inputs from the arguments, else from `file`, else from standard input; each split at its tab."""
    if arguments and file is not None:
        raise ConfigError("give texts as arguments or with --file, not both")
    if arguments:
        lines, source = list(arguments), "argument {}"
    else:
        name = "standard input" if file in (None, STDIN) else file
        lines, source = _read_lines(file or STDIN), f"{name} line {{}}"
        if not lines:
            raise ConfigError(f"no texts to classify: {name} is empty")
    parts = [_split(line, source.format(number)) for number, line in enumerate(lines, start=1)]
    return Inputs([text for text, _ in parts], [pair for _, pair in parts],
                  [source.format(number) for number in range(1, len(lines) + 1)])


def _split(line: str, source: str) -> tuple[str, str | None]:
    """A line's text and, after a tab, its pair."""
    fields = line.split("\t")
    if len(fields) > 2:
        raise DataError(f"{source}: expected a text, or a text and its pair separated by one tab; "
                        f"got {len(fields)} tab-separated fields")
    return fields[0], (fields[1] if len(fields) == 2 else None)


def _read_lines(file: str) -> list[str]:
    """The lines of a UTF-8 file (a byte-order mark is skipped), or of standard input for `-`."""
    if file == STDIN:
        if sys.stdin.isatty():
            print("reading texts from standard input, one per line (end with Ctrl-D)", file=sys.stderr)
        name, data = "standard input", sys.stdin.buffer.read()
    else:
        try:
            name, data = file, Path(file).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read --file {file}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def text_report(predictor: Predictor, predictions: Sequence[Prediction]) -> str:
    """Readable results of one or more predictions: label, confidence, class probabilities, tokens per layer."""
    blocks = [f"{predictor.title}; pruning: {pruning_title(predictions[0].pruning)}"]
    for number, prediction in enumerate(predictions, start=1):
        probabilities = ", ".join(f"{name} {p:.3f}" for name, p in prediction.probabilities.items())
        lines = [f"[{number}] {' | '.join(prediction.texts)}",
                 f"    label: {prediction.label} (confidence {prediction.confidence:.3f}; {probabilities})",
                 "    tokens kept at the input of each layer:"]
        lines += [f"    L{layer:<2} {len(kept):>3}/{len(prediction.tokens):<3} {' '.join(kept)}"
                  for layer, kept in enumerate(prediction.kept_tokens, start=1)]
        lines += [f"    note: {note}" for note in prediction.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def json_report(run_dir: str, predictor: Predictor, predictions: Sequence[Prediction]) -> dict[str, Any]:
    """JSON-ready results of one or more predictions: the run, the pruning setting, `Prediction.to_dict` of each."""
    return {"run_dir": str(run_dir), "model": predictor.title, "pruning": predictions[0].pruning.to_dict(),
            "predictions": [prediction.to_dict() for prediction in predictions]}
