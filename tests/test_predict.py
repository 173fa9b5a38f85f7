"""Predictions on one's own text: `tsdtp.load_run(...).predict` and `tsdtp predict`, with their bad inputs."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

import tsdtp
from tsdtp.classification.checkpoint import save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, encode_texts
from tsdtp.classification.evaluate import evaluate_model
from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.explorer.session import analyse
from tsdtp.explorer.session import load_run as explorer_load_run
from tsdtp.translation.config import MTConfig

SENTENCE = "a gorgeous , witty , seductive movie that nobody should miss ."
QUESTION, ANSWER = "who made the film?", "the film was made by a small studio."


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, base_model) -> Path:
    """An SST-2 run trained as ts-dtp k=0.5 and a dense QNLI run (the session model, saved as checkpoints)."""
    root = tmp_path_factory.mktemp("runs")
    save_checkpoint(root / "sst2", base_model, TrainConfig(task="sst2", pruning=PruningConfig(method="ts-dtp", k=0.5)))
    save_checkpoint(root / "qnli", base_model, TrainConfig(task="qnli"))
    return root


@pytest.fixture(scope="module")
def sst2(runs: Path) -> tsdtp.Predictor:
    """The SST-2 run, loaded once through the package's top-level API."""
    return tsdtp.load_run(runs / "sst2")


def test_the_package_exposes_load_run_and_its_version():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert callable(tsdtp.load_run) and f'\nversion = "{tsdtp.__version__}"\n' in pyproject


def test_predict_gives_label_confidence_probabilities_and_tokens_per_layer(sst2):
    first, second = sst2.predict([SENTENCE, "an ugly , pointless mess"])
    assert first.texts == (SENTENCE,) and second.texts == ("an ugly , pointless mess",)
    for prediction in (first, second):
        assert set(prediction.probabilities) == {"negative", "positive"}
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
        assert prediction.confidence == max(prediction.probabilities.values())
        assert prediction.probabilities[prediction.label] == prediction.confidence
        assert prediction.kept_tokens[0] == prediction.tokens and len(prediction.kept_tokens) == 6
        assert prediction.keep_counts == tuple(len(kept) for kept in prediction.kept_tokens)
        assert list(prediction.keep_counts) == sorted(prediction.keep_counts, reverse=True)
        assert not prediction.truncated and prediction.input_tokens == len(prediction.tokens)
    assert first.pruning == PruningConfig(method="ts-dtp", k=0.5) and first.keep_counts[-1] < len(first.tokens)
    assert "seductive" in first.tokens and all(token in first.tokens for token in first.kept_tokens[-1])
    assert [p.label for p in sst2.predict(SENTENCE)] == [first.label]


def test_a_prediction_matches_evaluate_model_and_the_explorer(sst2, runs, tokenizer):
    (prediction,) = sst2.predict([SENTENCE])
    ids, types = encode_texts(tokenizer, [(SENTENCE,)], 128)
    result, _ = evaluate_model(sst2.model, EncodedSplit(ids, types, [prediction.prediction], [(SENTENCE,)]), 1,
                               tokenizer.pad_token_id, progress=False)
    assert result.accuracy == 1.0 and result.keep_ratio == pytest.approx(prediction.keep_ratio)
    assert result.flops_ratio == pytest.approx(prediction.flops_ratio)
    shown = analyse(explorer_load_run(runs / "sst2"), [SENTENCE], prediction.pruning)
    assert (shown.probs, shown.keep, shown.tokens) == (prediction.probs, prediction.keep, prediction.tokens)


def test_overrides_change_the_trained_setting_and_leave_the_model_as_it_was(sst2):
    narrow, = sst2.predict([SENTENCE], k=-1.0)
    wide, = sst2.predict([SENTENCE], k=2.0)
    assert narrow.kept_cells < wide.kept_cells
    dense, = sst2.predict([SENTENCE], method="none")
    assert dense.keep_counts == (len(dense.tokens),) * 6 and dense.flops_ratio == pytest.approx(1.0)
    topk, = sst2.predict([SENTENCE], method="topk", prune_layers=(1, 2))
    assert topk.pruning.gamma == 0.0 and topk.pruning.prune_layers == (1, 2)
    assert topk.keep_counts[3] == topk.keep_counts[-1]
    assert sst2.model.pruning == PruningConfig(method="ts-dtp", k=0.5)
    with pytest.raises(ConfigError, match="k must be a number >= -3"):
        sst2.predict([SENTENCE], k=-9)
    with pytest.raises(ConfigError, match="gamma must be 0"):
        sst2.predict([SENTENCE], method="general-dtp", gamma=0.5)
    with pytest.raises(ConfigError, match="unknown pruning setting"):
        sst2.predict([SENTENCE], width=3)


def test_a_pair_task_reads_pairs(runs):
    qnli = tsdtp.load_run(runs / "qnli")
    (pair,) = qnli.predict([QUESTION], [ANSWER])
    assert pair.texts == (QUESTION, ANSWER) and pair.tokens.count("[SEP]") == 2
    assert set(pair.probabilities) == {"entailment", "not_entailment"}
    assert pair.to_dict()["pair"] == ANSWER
    with pytest.raises(ConfigError, match=r"input 2 has no sentence: this model reads pairs \(question \+ sentence\)"):
        qnli.predict([QUESTION, QUESTION], [ANSWER, None])
    with pytest.raises(ConfigError, match="input 1 has no sentence"):
        qnli.predict([QUESTION])
    with pytest.raises(ConfigError, match="input 1: the sentence is empty"):
        qnli.predict([QUESTION], ["  "])
    with pytest.raises(ConfigError, match="1 text.* but 2 pair"):
        qnli.predict([QUESTION], [ANSWER, ANSWER])


@pytest.mark.parametrize("texts, pairs, message", [
    (["fine", "  \n"], None, "input 2 is empty"),
    ([""], None, "input 1 is empty"),
    (["fine", 3], None, "input 2: the text must be a string, not int"),
    ([SENTENCE], ["a second text"], "input 1 has a second text, but this model reads a single sentence"),
])
def test_bad_inputs_are_named(sst2, texts, pairs, message):
    with pytest.raises(ConfigError, match=message):
        sst2.predict(texts, pairs)


def test_a_long_text_is_truncated_to_the_limit_and_says_so(sst2):
    (long,) = sst2.predict([" ".join(["word"] * 300)])
    assert len(long.tokens) == 128 and long.input_tokens == 302 and long.truncated
    assert any("truncated to 128" in note for note in long.notes)
    assert long.to_dict()["truncated"] is True


def test_run_directories_that_are_not_classifiers_are_refused(tmp_path: Path):
    translation = tmp_path / "mt-dense"
    (translation / "model").mkdir(parents=True)
    (translation / "config.json").write_text(json.dumps(MTConfig().to_dict()))
    with pytest.raises(CheckpointError, match=r"translation.*tsdtp mt-eval --run-dir"):
        tsdtp.load_run(translation)
    early = tmp_path / "mt-first-epoch"
    early.mkdir()
    (early / "config.json").write_text(json.dumps(MTConfig().to_dict()))
    with pytest.raises(CheckpointError, match="is a wmt16 run, not a classifier.*mt-eval"):
        tsdtp.load_run(early)
    with pytest.raises(CheckpointError, match="does not exist"):
        tsdtp.load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        tsdtp.load_run(tmp_path / "empty")


def strict_json(text: str) -> dict:
    """Parse JSON, refusing NaN and infinities."""
    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Make `data` the process's standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_cli_prints_label_confidence_and_kept_tokens_for_arguments(runs, capsys):
    assert main(["predict", "--run-dir", str(runs / "sst2"), SENTENCE, "an ugly , pointless mess"]) == 0
    out = capsys.readouterr().out
    assert "pruning: ts-dtp · k = 0.5 · γ = 0.5" in out
    assert f"[1] {SENTENCE}" in out and "[2] an ugly , pointless mess" in out
    assert out.count("label: ") == 2 and "confidence 0." in out
    assert "L1 " in out and "L6 " in out and "[CLS] a gorgeous" in out


def test_cli_reads_a_file_of_pairs_and_writes_strict_json(runs, tmp_path, capsys):
    file = tmp_path / "pairs.tsv"
    file.write_bytes(f"\ufeff{QUESTION}\t{ANSWER}\r\n{QUESTION}\tthe cast.\n".encode())
    assert main(["predict", "--run-dir", str(runs / "qnli"), "--file", str(file), "--json", "--method", "topk"]) == 0
    report = strict_json(capsys.readouterr().out)
    assert report["pruning"]["method"] == "topk" and report["model"].startswith("qnli")
    first, second = report["predictions"]
    assert (first["text"], first["pair"], second["pair"]) == (QUESTION, ANSWER, "the cast.")
    assert first["label"] in ("entailment", "not_entailment") and len(first["layers"]) == 6
    assert first["layers"][0]["kept"] == len(first["tokens"]) > first["layers"][-1]["kept"]


@pytest.mark.parametrize("args", [[], ["--file", "-"]])
def test_cli_reads_standard_input(runs, monkeypatch, capsys, args):
    stdin(monkeypatch, f"{SENTENCE}\nwarm , funny and wise\n".encode())
    assert main(["predict", "--run-dir", str(runs / "sst2"), "--json", *args]) == 0
    report = strict_json(capsys.readouterr().out)
    assert [p["text"] for p in report["predictions"]] == [SENTENCE, "warm , funny and wise"]


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("run, make_args, message", [
    ("sst2", lambda d: ["fine", ""], "argument 2 is empty"),
    ("sst2", lambda d: ["--file", write(d / "blank.txt", b"fine\n\nok\n")], "blank.txt line 2 is empty"),
    ("sst2", lambda d: ["--file", write(d / "latin1.txt", "caf\xe9\n".encode("latin-1"))],
     r"latin1.txt is not UTF-8 text \(byte 3"),
    ("sst2", lambda d: ["--file", write(d / "empty.txt", b"")], "no texts to classify: .*empty.txt is empty"),
    ("sst2", lambda d: ["--file", str(d / "missing.txt")], "cannot read --file .*missing.txt"),
    ("sst2", lambda d: ["fine", "--file", write(d / "both.txt", b"ok\n")], "as arguments or with --file, not both"),
    ("sst2", lambda d: ["fine", "--k", "-9"], "k must be a number >= -3"),
    ("sst2", lambda d: ["a\tb\tc"], "argument 1: expected a text, or a text and its pair .* got 3"),
    ("sst2", lambda d: ["a\tb"], "argument 1 has a second text, but this model reads a single sentence"),
    ("qnli", lambda d: ["--file", write(d / "single.tsv", f"{QUESTION}\t{ANSWER}\n{QUESTION}\n".encode())],
     "single.tsv line 2 has no sentence"),
])
def test_cli_bad_input_is_one_clear_line(runs, tmp_path, capsys, run, make_args, message):
    assert main(["predict", "--run-dir", str(runs / run), *make_args(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tsdtp predict: error: ")
    assert re.search(message, lines[0]), lines[0]


def test_cli_refuses_a_translation_run_and_stdin_without_text(tmp_path, monkeypatch, capsys):
    (tmp_path / "mt" / "model").mkdir(parents=True)
    (tmp_path / "mt" / "scorers.pt").write_bytes(b"x")
    assert main(["predict", "--run-dir", str(tmp_path / "mt"), "some text"]) == 2
    assert "tsdtp mt-eval --run-dir" in capsys.readouterr().err
    stdin(monkeypatch, b"")
    assert main(["predict", "--run-dir", str(tmp_path / "mt")]) == 2
    assert "no texts to classify: standard input is empty" in capsys.readouterr().err
