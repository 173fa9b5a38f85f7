"""Training lowers the loss, resumes after an interruption, and run directories are checked."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import tsdtp.classification.train as train_module
from tsdtp.analysis import frames, stored_traces
from tsdtp.classification.checkpoint import load_checkpoint, save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.experiments import evaluate_settings
from tsdtp.classification.report import evaluate_run
from tsdtp.classification.train import (
    build_model,
    epoch_plan,
    prepare_data,
    train,
)
from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineMode
from tsdtp.data_files import tag_of_label
from tsdtp.errors import CheckpointError, DataError
from tsdtp.hub import load_tokenizer
from tsdtp.runs.cache import ensure_trained
from tsdtp.runs.eval_files import eval_name
from tsdtp.runs.results import RESULT_COLUMNS
from tsdtp.runs.training_data import DATA_RECORD
from tsdtp.runs.training_loop import plan_epochs, seed_everything


def tiny_config(**changes) -> TrainConfig:
    base = dict(task="sst2", epochs=2.0, batch_size=8, lr=1e-4, max_train_samples=32, save_every=2,
                pruning=PruningConfig(method="ts-dtp", k=0.5))
    return TrainConfig(**{**base, **changes})


def mean_loss(model, split, pad_id) -> float:
    model.eval()
    losses = []
    with torch.no_grad():
        for indices in batch_indices(split.lengths(), 16, shuffle=False):
            batch = collate(split, indices, pad_id)
            losses.append(float(F.cross_entropy(model(batch).logits, batch["labels"], reduction="sum")))
    return sum(losses) / len(split)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, glue_dir):
    run_dir = tmp_path_factory.mktemp("runs") / "ts"
    metrics = train(tiny_config(), run_dir, str(glue_dir), progress=False)
    return run_dir, metrics


def test_a_few_steps_on_a_tiny_subset_lower_the_loss(trained_run, glue_dir):
    run_dir, metrics = trained_run
    config = tiny_config()
    tokenizer = load_tokenizer(config.model)
    train_split, _, _ = prepare_data(config, tokenizer, str(glue_dir))
    seed_everything(config.seed)
    before = mean_loss(build_model(config, tokenizer), train_split, tokenizer.pad_token_id)
    after = mean_loss(load_checkpoint(run_dir)[0], train_split, tokenizer.pad_token_id)
    assert after < before
    assert metrics["steps"] == 8 and len(metrics["history"]) == 2
    assert json.loads((run_dir / "config.json").read_text()) == json.loads(json.dumps(config.to_dict()))


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, glue_dir, monkeypatch, interrupt_on_call):
    real_collate = interrupt_on_call(train_module, "collate", 4)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(epochs=1.0), tmp_path, str(glue_dir), progress=False)
    assert torch.load(tmp_path / "state.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(train_module, "collate", real_collate)
    metrics = train(tiny_config(epochs=1.0), tmp_path, str(glue_dir), progress=False)
    assert metrics["steps"] == 4


def test_the_last_hard_ratio_of_training_steps_run_straight_through(tmp_path, glue_dir, monkeypatch):
    import tsdtp.core.pruned_model as pruned_model

    flags = []
    real_run_layers = pruned_model.run_layers

    def spying_run_layers(*args, **kwargs):
        if kwargs["mode"].trains:
            flags.append(kwargs["mode"] is EngineMode.STRAIGHT_THROUGH)
        return real_run_layers(*args, **kwargs)

    monkeypatch.setattr(pruned_model, "run_layers", spying_run_layers)
    metrics = train(tiny_config(epochs=1.0, hard_ratio=0.5), tmp_path, str(glue_dir), progress=False)
    assert flags == [False, False, True, True] and metrics["steps"] == 4


def test_each_epoch_is_seeded_apart_and_the_last_is_cut():
    plan = plan_epochs(lambda seed: [[seed]] * 4, seed=10, epochs=3, last_epoch_steps=lambda n: n // 2)
    assert plan == [[[10]] * 4, [[11]] * 4, [[12]] * 2]


def test_a_fractional_epoch_count_runs_the_steps_it_rounds_up_to():
    split = EncodedSplit([[0] * 5] * 100, [[0] * 5] * 100, [0] * 100, [("x",)] * 100)
    plan = epoch_plan(split, TrainConfig(epochs=1.25, batch_size=8))
    assert [len(epoch) for epoch in plan] == [13, 4]  # ceil(1.25 * 13) = 17 steps
    assert sorted(i for batch in plan[0] for i in batch) == list(range(100)) and plan[0] != plan[1]
    assert [len(epoch) for epoch in epoch_plan(split, TrainConfig(epochs=0.01, batch_size=8))] == [1]


def test_a_run_directory_with_another_config_is_refused(trained_run, glue_dir):
    run_dir, _ = trained_run
    with pytest.raises(CheckpointError, match="different config"):
        train(tiny_config(lr=3e-5), run_dir, str(glue_dir), progress=False)


def test_a_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="is corrupt or not a torch file"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "elsewhere")


def test_eval_writes_keep_traces_and_a_contracted_results_row(trained_run, glue_dir, tmp_path):
    run_dir, _ = trained_run
    results = tmp_path / "results.csv"
    record = evaluate_run(run_dir, str(glue_dir), {"k": 0.0}, results, batch_size=4, progress=False)
    assert 0.0 < record["keep_ratio"] < 1.0 and record["flops_ratio"] < 1.0
    traces = pd.read_parquet(run_dir / "eval" / "ts-dtp_k0_g0.5.parquet")
    assert {"example", "layer", "token", "kept"} <= set(traces.columns)
    assert traces[traces.token == "[CLS]"].kept.all()
    assert (traces.groupby("layer").kept.mean().diff().dropna() <= 0).all()
    table = pd.read_csv(results)
    assert list(table.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert table.loc[0, "method"] == "ts-dtp" and table.loc[0, "k"] == 0.0


def test_posthoc_methods_evaluate_a_trained_run(trained_run, glue_dir):
    run_dir, _ = trained_run
    for method in ("general-dtp-posthoc", "topk", "random", "reference-masking"):
        record = evaluate_run(run_dir, str(glue_dir), {"method": method}, None, batch_size=4, progress=False)
        assert 0.0 <= record["accuracy"] <= 1.0
    assert record["flops_ratio"] > 2.0


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, glue_dir):
    assert main(["eval", "--run-dir", str(tmp_path)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path), "--data-dir", str(glue_dir), "--k", "-7"]) == 2
    assert "k must be" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path), "--task", "mnli"]) == 2
    assert "argument --task: invalid choice: 'mnli'" in capsys.readouterr().err


def test_a_dense_run_evaluated_by_the_cli_and_by_the_pipeline_writes_one_file_name(base_model, glue_dir, tmp_path):
    config = TrainConfig(task="sst2", max_eval_samples=4)
    names = []
    for way in ("cli", "pipeline"):
        run_dir = tmp_path / way
        save_checkpoint(run_dir, base_model, config)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
        if way == "cli":
            assert main(["eval", "--run-dir", str(run_dir), "--data-dir", str(glue_dir), "--batch-size", "4"]) == 0
        else:
            rows = evaluate_settings(run_dir, [{}], str(glue_dir), batch_size=4, progress=False)
            assert frames.trace_path(rows.iloc[0]).is_file()
        names.append(sorted(path.name for path in (run_dir / "eval").iterdir()))
    assert names[0] == names[1] == ["none_k1_g0.json", "none_k1_g0.parquet"]


def test_two_keep_schedules_of_one_method_keep_their_own_traces(base_model, glue_dir, tmp_path):
    config = TrainConfig(task="sst2", max_eval_samples=4)
    save_checkpoint(tmp_path, base_model, config)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    schedules = [[0.65, 0.45, 0.3, 0.2], [0.45, 0.27, 0.17, 0.11]]
    rows = evaluate_settings(tmp_path, [{"method": "random", "keep_schedule": s} for s in schedules], str(glue_dir),
                             batch_size=4, progress=False)
    paths = [frames.trace_path(row) for _, row in rows.iterrows()]
    assert [path.name for path in paths] == ["random_k1_g0_s0.65-0.45-0.3-0.2.parquet",
                                             "random_k1_g0_s0.45-0.27-0.17-0.11.parquet"]
    stored = stored_traces.store_traces(rows, tmp_path / "stored")
    assert len(set(stored)) == 2 and all(path.is_file() for path in stored)


def other_data(glue_dir: Path, root: Path, dev_rows: int | None = None) -> Path:
    """`root/other`: a copy of the session's GLUE data, its SST-2 dev.tsv cut to the first `dev_rows` examples."""
    target = root / "other"
    shutil.copytree(glue_dir / "glue", target / "glue")
    if dev_rows is not None:
        dev = target / "glue" / "SST-2" / "dev.tsv"
        dev.write_text("".join(dev.read_text().splitlines(keepends=True)[: dev_rows + 1]))
    return target


def test_eval_on_other_data_writes_its_own_files_and_results_row(trained_run, glue_dir, tmp_path, capsys):
    run_dir, _ = trained_run
    results, stem = tmp_path / "results.csv", eval_name(tiny_config().pruning)
    evaluate_run(run_dir, str(glue_dir), None, results, batch_size=4, progress=False)
    standard = {path.name: path.read_bytes() for path in (run_dir / "eval").glob(f"{stem}.*")}
    other = other_data(glue_dir, tmp_path, dev_rows=2)
    assert main(["eval", "--run-dir", str(run_dir), "--data-dir", str(other), "--results", str(results)]) == 0
    label = json.loads(capsys.readouterr().out)["eval_split"]
    tag = tag_of_label(label)
    assert tag is not None and label == f"sst2 dev [other {tag.digest}]"
    assert {path.name: path.read_bytes() for path in (run_dir / "eval").glob(f"{stem}.*")} == standard
    assert {path.name for path in (run_dir / "eval").glob(f"{stem}_data-{tag.digest}.*")} == {
        f"{stem}_data-{tag.digest}.json", f"{stem}_data-{tag.digest}.parquet"}
    table = pd.read_csv(results)
    assert sorted(zip(table.eval_split, table.n_eval)) == [("sst2 dev", 8), (label, 2)]
    assert frames.trace_path(table[table.n_eval == 2].iloc[0]).name == f"{stem}_data-{tag.digest}.parquet"


def test_training_records_its_data_beside_an_unchanged_config(trained_run, glue_dir):
    run_dir, _ = trained_run
    record = json.loads((run_dir / DATA_RECORD).read_text())
    train_tsv = glue_dir / "glue" / "SST-2" / "train.tsv"
    assert record["location"] == str(glue_dir.resolve())
    assert {"path": "train.tsv", "sha256": hashlib.sha256(train_tsv.read_bytes()).hexdigest()} in record["files"]
    assert set(json.loads((run_dir / "config.json").read_text())) == set(tiny_config().to_dict())


def test_a_finished_run_is_not_rerun_on_other_data(trained_run, glue_dir, tmp_path, capsys):
    run_dir, metrics = trained_run
    other = other_data(glue_dir, tmp_path, dev_rows=2)
    both = rf"trained on {re.escape(str(glue_dir.resolve()))} .*, not on {re.escape(str(other.resolve()))} "
    with pytest.raises(CheckpointError, match=both):
        train(tiny_config(), run_dir, str(other), progress=False)
    with pytest.raises(CheckpointError, match=both):
        ensure_trained(tiny_config(), run_dir, str(other), progress=False)
    assert main(["train", "--run-dir", str(run_dir), "--data-dir", str(other)]) == 2
    assert "was trained on" in capsys.readouterr().err
    same = shutil.copytree(glue_dir / "glue", tmp_path / "same" / "glue").parent
    assert ensure_trained(tiny_config(), run_dir, str(same), progress=False) == (metrics, False)


def test_a_run_without_a_data_record_is_accepted_as_before(trained_run, glue_dir, tmp_path):
    run_dir, metrics = trained_run
    record = run_dir / DATA_RECORD
    saved = record.read_bytes()
    record.unlink()
    try:
        other = other_data(glue_dir, tmp_path, dev_rows=2)
        assert ensure_trained(tiny_config(), run_dir, str(other), progress=False) == (metrics, False)
        assert train(tiny_config(), run_dir, str(other), progress=False) == metrics
        assert not record.exists()
    finally:
        record.write_bytes(saved)


def test_an_interrupted_run_resumes_only_on_its_own_data(tmp_path, glue_dir, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    run_dir, real_evaluate = tmp_path / "run", train_module.evaluate_model
    monkeypatch.setattr(train_module, "evaluate_model", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(epochs=1.0), run_dir, str(glue_dir), progress=False)
    monkeypatch.setattr(train_module, "evaluate_model", real_evaluate)
    state = (run_dir / "state.pt").read_bytes()
    with pytest.raises(CheckpointError, match="was trained on"):
        train(tiny_config(epochs=1.0), run_dir, str(other_data(glue_dir, tmp_path, dev_rows=2)), progress=False)
    assert (run_dir / "state.pt").read_bytes() == state
    assert train(tiny_config(epochs=1.0), run_dir, str(glue_dir), progress=False)["steps"] == 4


def test_a_run_stopped_by_a_bad_data_file_trains_on_the_corrected_file(tmp_path, glue_dir):
    data, run_dir = other_data(glue_dir, tmp_path), tmp_path / "run"
    train_tsv = data / "glue" / "SST-2" / "train.tsv"
    good = train_tsv.read_bytes()
    train_tsv.write_bytes(good + b"a row without its label\n")
    with pytest.raises(DataError, match=r"train\.tsv:34: 1 tab-separated field\(s\), expected 2"):
        train(tiny_config(epochs=1.0), run_dir, str(data), progress=False)
    train_tsv.write_bytes(good)
    assert train(tiny_config(epochs=1.0), run_dir, str(data), progress=False)["steps"] == 4
    recorded = json.loads((run_dir / DATA_RECORD).read_text())["files"]
    assert {"path": "train.tsv", "sha256": hashlib.sha256(good).hexdigest()} in recorded
