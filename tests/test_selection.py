"""Selection without peeking: a held-out part of the training data, never trained on, to choose settings on."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tsdtp.analysis import frames
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.report import evaluate_run
from tsdtp.classification.train import prepare_data, train
from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.data_files import DATA_DIR_VARIABLE
from tsdtp.errors import ConfigError, DataError
from tsdtp.runs.selection import is_selection_label, selection_indices, selection_label


def test_the_selection_indices_are_a_fixed_disjoint_part_of_the_training_split():
    train_part, held_out = selection_indices(100, 0.2)
    assert len(held_out) == 20 and not set(train_part) & set(held_out)
    assert sorted(train_part + held_out) == list(range(100))
    assert selection_indices(100, 0.2) == (train_part, held_out)
    assert selection_indices(100, 0.0) == (list(range(100)), [])
    with pytest.raises(DataError, match="both need at least one"):
        selection_indices(3, 0.1)


@pytest.mark.parametrize("task, seed", [("sst2", 0), ("sst2", 3), ("qnli", 0)])
def test_no_run_trains_on_its_selection_split(unique_data, tokenizer, task, seed):
    config = TrainConfig(task=task, selection_fraction=0.2, max_train_samples=20, seed=seed)
    trained, _, _ = prepare_data(config, tokenizer, str(unique_data))
    _, selection, label = prepare_data(config, tokenizer, str(unique_data), include_train=False, split="selection")
    _, evaluation, eval_label = prepare_data(config, tokenizer, str(unique_data), include_train=False)
    assert trained is not None and len(trained) == 20 and len(selection) == (10 if task == "sst2" else 6)
    assert not set(trained.texts) & set(selection.texts)
    assert not set(selection.texts) & set(evaluation.texts)
    assert is_selection_label(label) and not is_selection_label(eval_label)
    again = prepare_data(config.replace(seed=seed + 1), tokenizer, str(unique_data), False, split="selection")[1]
    assert again.texts == selection.texts  # the same held-out examples, whatever the run's seed


def test_the_selection_label_names_the_part_of_the_training_data():
    assert selection_label("sst2 dev", 0.02) == "sst2 train selection 2%"
    assert selection_label("qnli (dev split)", 0.1) == "qnli (dev split) train selection 10%"
    assert selection_label("sst2 dev [mine 1a2b3c4d]", 0.05) == "sst2 train selection 5% [mine 1a2b3c4d]"


def test_a_run_without_a_selection_split_cannot_be_evaluated_on_one(unique_data, tokenizer):
    with pytest.raises(ConfigError, match="holds out no selection split"):
        prepare_data(TrainConfig(), tokenizer, str(unique_data), include_train=False, split="selection")


def test_a_selection_evaluation_writes_its_own_files_and_results_row(unique_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(unique_data))  # the standard data: plain labels and file names
    config = TrainConfig(task="sst2", epochs=1.0, batch_size=8, max_train_samples=16, selection_fraction=0.2,
                         pruning=PruningConfig(method="ts-dtp", k=0.5), seed=2)
    run_dir = tmp_path / "run"
    train(config, run_dir, str(unique_data), progress=False)
    results = tmp_path / "results.csv"
    evaluate_run(run_dir, str(unique_data), None, results, batch_size=4, progress=False)
    assert main(["eval", "--run-dir", str(run_dir), "--data-dir", str(unique_data), "--results", str(results),
                 "--split", "selection"]) == 0
    assert json.loads(capsys.readouterr().out)["n_eval"] == 10
    names = sorted(path.name for path in (run_dir / "eval").iterdir())
    assert names == ["ts-dtp_k0.5_g0.5.json", "ts-dtp_k0.5_g0.5.parquet", "ts-dtp_k0.5_g0.5_selection.json",
                     "ts-dtp_k0.5_g0.5_selection.parquet"]
    table = pd.read_csv(results)
    assert sorted(table.eval_split) == ["sst2 dev", "sst2 train selection 20%"] and set(table.seed) == {2}
    assert {frames.trace_path(row).name for _, row in table.iterrows()} == set(names[1::2])
