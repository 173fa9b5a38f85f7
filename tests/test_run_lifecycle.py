"""A run directory's lifecycle: nothing written before the inputs are valid, recovery advice that works when
followed to the letter, no waste left on disk, one writer at a time, strict JSON, and bad command lines
refused in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import transformers

import tsdtp.classification.train as train_module
import tsdtp.runs.io as io_module
from tsdtp.classification.checkpoint import save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.cli import main
from tsdtp.errors import RunBusyError
from tsdtp.runs.cache import run_finished
from tsdtp.runs.io import atomic_torch_save, strict_json
from tsdtp.runs.lock import exclusive_lock
from tsdtp.runs.run_dir import TRAIN_LOCK, evaluation_lock, open_run

REPO = Path(__file__).resolve().parents[1]
TINY_MT = ["--vocab-size", "300", "--d-model", "32", "--encoder-layers", "3", "--decoder-layers", "2",
           "--attention-heads", "2", "--ffn-dim", "64", "--max-tokens", "400", "--max-source-length", "40",
           "--max-target-length", "40", "--val-samples", "4", "--epochs", "1"]


@pytest.fixture(autouse=True)
def quiet_libraries():
    """No progress bars from datasets and transformers, so stderr holds only what tsdtp says."""
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    yield
    datasets.enable_progress_bars()
    transformers.utils.logging.enable_progress_bar()


def train_args(run_dir: Path, data_dir: Path, *extra: str) -> list[str]:
    """A one-step `tsdtp train` command on the fixture data."""
    return ["train", "--run-dir", str(run_dir), "--data-dir", str(data_dir), "--max-train-samples", "8",
            "--batch-size", "8", "--epochs", "1", "--max-eval-samples", "8", *extra]


def eval_args(run_dir: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["eval", "--run-dir", str(run_dir), "--data-dir", str(data_dir), "--batch-size", "4", *extra]


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    """The single line the command wrote to stderr (no traceback, nothing else)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err.strip()


def saved_run(run_dir: Path, model, **changes) -> Path:
    """A run directory holding `model` as a finished checkpoint, without training."""
    config = TrainConfig(task="sst2", max_eval_samples=4, **changes)
    save_checkpoint(run_dir, model, config)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    return run_dir


BAD_COMMANDS = {
    "threads -1": (lambda run, data: ["--threads", "-1", *train_args(run, data)],
                   "tsdtp: error: argument --threads: must be a whole number >= 1 (got -1)"),
    "threads 0": (lambda run, data: ["--threads", "0", *train_args(run, data)], "must be a whole number >= 1"),
    "unknown model": (lambda run, data: train_args(run, data, "--model", "nosuch/model"),
                      "tsdtp train: error: cannot load model 'nosuch/model': there is no folder"),
    "missing model folder": (lambda run, data: train_args(run, data, "--model", str(run.parent / "no" / "model")),
                             "no model folder"),
    "prune layer too deep": (lambda run, data: train_args(run, data, "--method", "ts-dtp", "--prune-layers", "99"),
                             "prune_layers [99] out of range for a 6-layer model; expected layers 0..5"),
    "keep schedule too short": (lambda run, data: train_args(run, data, "--method", "ts-dtp", "--keep-schedule",
                                                             "0.5,0.5"),
                                "keep_schedule has 2 fraction(s) for 4 pruning layer(s) [1, 2, 3, 4]"),
    "missing data folder": (lambda run, data: train_args(run, data / "elsewhere"), "no SST-2 folder"),
    "infinite k": (lambda run, data: train_args(run, data, "--method", "ts-dtp", "--k", "inf"),
                   "pruning.k is inf; a run's settings must be finite"),
    "eval of no samples": (lambda run, data: eval_args(run, data, "--max-eval-samples", "0"),
                           "tsdtp eval: error: argument --max-eval-samples: must be a whole number >= 1 (got 0)"),
    "eval batch of 0": (lambda run, data: eval_args(run, data, "--batch-size", "0"), "--batch-size: must be"),
    "unknown marian": (lambda run, data: ["mt-train", "--run-dir", str(run), "--data-dir", str(data), "--model",
                                          "nosuch/marian"], "cannot load model 'nosuch/marian'"),
    "encoder layer too deep": (lambda run, data: ["mt-train", "--run-dir", str(run), "--data-dir", str(data),
                                                  *TINY_MT, "--prune-layers", "5"],
                               "prune_layers [5] out of range for a 3-layer model"),
}


@pytest.mark.parametrize("case", list(BAD_COMMANDS))
def test_a_bad_command_is_one_line_and_leaves_no_run_directory(case, tmp_path, glue_dir, capsys):
    command, message = BAD_COMMANDS[case]
    run_dir = tmp_path / "run"
    assert main(command(run_dir, glue_dir)) == 2
    assert message in one_line_error(capsys)
    assert not run_dir.exists()


@pytest.mark.parametrize("flags, message", [
    (["--method", "topk", "--keep-schedule", "0.5"], "keep_schedule has 1 fraction(s) for 4 pruning layer(s)"),
    (["--method", "ts-dtp", "--prune-layers", "6"], "prune_layers [6] out of range for a 6-layer model"),
])
def test_eval_refuses_pruning_the_model_cannot_take_before_writing(flags, message, model, tmp_path, glue_dir, capsys):
    run_dir = saved_run(tmp_path / "run", model)
    assert main(eval_args(run_dir, glue_dir, *flags)) == 2
    assert message in one_line_error(capsys)
    assert not (run_dir / "eval").exists()


def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any training step fail, to show that a command trains nothing."""
    def refuse(*args, **kwargs):
        raise AssertionError("trained a step")

    monkeypatch.setattr(train_module, "collate", refuse)


def test_the_corrected_command_trains_and_a_finished_run_keeps_no_state(tmp_path, glue_dir, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    assert main(train_args(run_dir, glue_dir, "--method", "ts-dtp", "--prune-layers", "99")) == 2
    assert main(train_args(run_dir, glue_dir, "--method", "ts-dtp")) == 0
    final = json.loads(capsys.readouterr().out)
    assert sorted(path.name for path in run_dir.iterdir()) == ["checkpoint.pt", "config.json", "data.json",
                                                               "metrics.json", "train_log.jsonl"]
    assert run_finished(run_dir)
    no_training(monkeypatch)
    assert main(train_args(run_dir, glue_dir, "--method", "ts-dtp")) == 0
    assert json.loads(capsys.readouterr().out) == final
    assert main(eval_args(run_dir, glue_dir)) == 0


def advice(error: str) -> str:
    """What the message tells the user to do, after its last ';'."""
    return error.rsplit(";", 1)[1].strip()


@pytest.mark.parametrize("keep_state, damage", [(True, "corrupt"), (False, "corrupt"), (False, "missing")])
def test_following_the_advice_for_a_lost_checkpoint_gives_a_working_run(keep_state, damage, tmp_path, glue_dir,
                                                                        capsys, monkeypatch):
    run_dir = tmp_path / "run"
    command = train_args(run_dir, glue_dir, *(["--keep-state"] if keep_state else []))
    assert main(command) == 0
    assert (run_dir / "state.pt").is_file() == keep_state
    checkpoint = run_dir / "checkpoint.pt"
    if damage == "corrupt":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        checkpoint.unlink()
    capsys.readouterr()
    assert main(eval_args(run_dir, glue_dir)) == 2
    told = advice(one_line_error(capsys))
    expected = "then run the same `tsdtp train` command again" if damage == "corrupt" else "to finish the run"
    assert expected in told and "saves the checkpoint again from state.pt" in told and "or retrains" in told
    if told.startswith("delete it"):
        checkpoint.unlink()
    if keep_state:
        no_training(monkeypatch)  # saved again from state.pt
    assert main(command) == 0
    assert main(eval_args(run_dir, glue_dir)) == 0


def test_following_the_advice_for_a_corrupt_state_resumes_cleanly(tmp_path, glue_dir, capsys, monkeypatch,
                                                                  interrupt_on_call):
    run_dir = tmp_path / "run"
    command = train_args(run_dir, glue_dir, "--max-train-samples", "16", "--save-every", "1")
    real = interrupt_on_call(train_module, "collate", 2)
    with pytest.raises(KeyboardInterrupt):
        main(command)
    monkeypatch.setattr(train_module, "collate", real)
    (run_dir / "state.pt").write_bytes(b"half a state")
    (run_dir / ".checkpoint.pt.k2j4_x9a").write_bytes(b"what a killed save left")
    capsys.readouterr()
    assert main(command) == 2
    error = one_line_error(capsys)
    assert "state.pt is corrupt" in error and advice(error).startswith("delete it and run the same train command")
    (run_dir / "state.pt").unlink()
    assert main(command) == 0
    assert not (run_dir / ".checkpoint.pt.k2j4_x9a").exists() and not (run_dir / "state.pt").exists()
    assert main(eval_args(run_dir, glue_dir)) == 0


@pytest.mark.parametrize("damage", ["garbage config", "another config", "garbage metrics"])
def test_following_the_advice_for_a_damaged_run_directory_gives_a_working_run(damage, tmp_path, glue_dir, capsys):
    run_dir = tmp_path / "run"
    command = train_args(run_dir, glue_dir)
    run_dir.mkdir()
    if damage == "garbage config":
        (run_dir / "config.json").write_text("{not json")
    elif damage == "another config":
        (run_dir / "config.json").write_text(json.dumps(TrainConfig(lr=1e-3).to_dict()))
    else:
        assert main(command) == 0
        (run_dir / "metrics.json").write_text('{"steps": ')
    capsys.readouterr()
    assert main(command) == 2
    told = advice(one_line_error(capsys))
    if "delete the run directory" in told or "or delete it" in told:
        for path in run_dir.iterdir():
            path.unlink()
        run_dir.rmdir()
    else:
        assert told.startswith("delete it and run the same train command again")
        (run_dir / "metrics.json").unlink()
    assert main(command) == 0
    assert main(eval_args(run_dir, glue_dir)) == 0


def test_an_interrupted_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    atomic_torch_save(target, {"old": torch.zeros(2)})

    def killed_save(obj, path):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(io_module.torch, "save", killed_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save(target, {"new": torch.ones(2)})
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert "old" in torch.load(target, weights_only=True)


def test_opening_a_run_removes_only_our_own_leftovers(tmp_path):
    run_dir = tmp_path / "run"
    ours = [".checkpoint.pt.k2j4_x9a", ".state.pt.0123abcd", ".metrics.json.zz__zz99"]
    theirs = [".notes.txt.k2j4_x9a", ".checkpoint.pt.backup", "checkpoint.pt.k2j4_x9a", "data.pt"]
    run_dir.mkdir()
    for name in ours + theirs:
        (run_dir / name).write_bytes(b"x")
    (run_dir / ".model.tmp").mkdir()
    with open_run(run_dir, {"task": "sst2"}, leftovers=(".model.tmp",)):
        assert (run_dir / TRAIN_LOCK).is_file()
    left = sorted(path.name for path in run_dir.iterdir())
    assert left == sorted(["config.json", *theirs])


def test_an_evaluation_clears_leftovers_of_its_own_folder(model, tmp_path, glue_dir):
    run_dir = saved_run(tmp_path / "run", model)
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / ".none_k1_g0.parquet.k2j4_x9a").write_bytes(b"x")
    assert main(eval_args(run_dir, glue_dir)) == 0
    assert sorted(path.name for path in (run_dir / "eval").iterdir()) == ["none_k1_g0.json", "none_k1_g0.parquet"]


def test_a_second_writer_is_refused_with_the_name_of_the_first(model, tmp_path, glue_dir, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with exclusive_lock(run_dir / TRAIN_LOCK, "test"):
        assert main(train_args(run_dir, glue_dir)) == 2
        error = one_line_error(capsys)
    assert f"run directory {run_dir} is in use by process {os.getpid()}" in error
    assert list(run_dir.iterdir()) == []
    saved_run(run_dir, model)
    with evaluation_lock(run_dir):
        assert main(eval_args(run_dir, glue_dir)) == 2
        assert "the eval/ folder of" in one_line_error(capsys)
    assert not (run_dir / "eval").exists()


HOLD_LOCK = """import sys, time
from pathlib import Path
from tsdtp.runs.lock import exclusive_lock
with exclusive_lock(Path(sys.argv[1]), "test"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    lock = tmp_path / TRAIN_LOCK
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        named = rf"run is in use by process {holder.pid} on .* \(`-c {re.escape(str(lock))}`, since "
        with pytest.raises(RunBusyError, match=named), exclusive_lock(lock, "run"):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert lock.is_file()
    with exclusive_lock(lock, "run"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_json_is_strict_in_files_and_on_stdout(model, tmp_path, glue_dir, capsys):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    assert strict_json({"a": float("nan"), "b": (float("inf"), np.float32(1.5))}, indent=None) == \
        '{"a": null, "b": [null, 1.5]}'
    run_dir = saved_run(tmp_path / "run", model)
    assert main(eval_args(run_dir, glue_dir)) == 0
    printed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    written = json.loads((run_dir / "eval" / "none_k1_g0.json").read_text(), parse_constant=refuse)
    assert printed["speedup"] is None and written["speedup"] is None
