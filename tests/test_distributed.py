"""Two gloo processes under torchrun train and evaluate as one process does, resume any run, and fail loudly.

Each launch is `python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py ...`
in a subprocess (one thread per process). The model is the packaged MiniLM saved without dropout, so that one
process and two draw no different dropout masks: what is left to differ is float rounding (other batch
shapes, other summation orders), which AdamW's normalised steps turn into parameter differences far below
the updates themselves.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import SST2_ROWS
from transformers import BertConfig, BertModel

import tsdtp.classification.train as train_module
from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, collate, encode_texts
from tsdtp.classification.evaluate import evaluate_model
from tsdtp.classification.train import build_model, prepare_data, train
from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.errors import ConfigError
from tsdtp.hub import load_tokenizer, resolve_model
from tsdtp.pipeline.plan import make_plan
from tsdtp.runs.cache import ensure_trained, run_finished
from tsdtp.runs.data_parallel import DataParallelStep, split_batch
from tsdtp.runs.launch import LAUNCHER_VARIABLE, launcher_environment, launcher_words
from tsdtp.runs.training_loop import seed_everything

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).resolve().parents[1]
LAUNCH_TIMEOUT_S = 300
"""A hung launch fails the test after this long instead of hanging the suite."""

METHODS = {"ts-dtp": PruningConfig(method="ts-dtp", k=0.5), "none": PruningConfig()}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The packaged MiniLM and its tokenizer, saved with dropout 0."""
    folder = tmp_path_factory.mktemp("minilm-no-dropout")
    path = resolve_model(MODEL)
    config = BertConfig.from_pretrained(path, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel.from_pretrained(path, config=config).save_pretrained(folder)
    load_tokenizer(MODEL).save_pretrained(folder)
    return folder


def tiny_config(model_dir: Path, method: str) -> TrainConfig:
    """Four steps of 8 examples (one epoch of 32), state saved every 2 steps."""
    return TrainConfig(task="sst2", model=str(model_dir), epochs=1.0, batch_size=8, lr=1e-4, max_train_samples=32,
                       save_every=2, pruning=METHODS[method])


def train_args(config: TrainConfig, run_dir: Path, *extra: str) -> list[str]:
    """The `tsdtp train` command line of `config` (as the tiny configs set it)."""
    return ["train", "--task", config.task, "--model", config.model, "--epochs", "1", "--batch-size", "8",
            "--lr", "1e-4", "--max-train-samples", "32", "--save-every", "2", "--method", config.pruning.method,
            "--k", str(config.pruning.k), "--run-dir", str(run_dir), *extra]


def launch(*actions: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    """Run the worker's `actions` (one after another) in 2 processes; returns the finished launcher."""
    words = [word for action in actions for word in ["--then", *action]][1:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    env.pop("TSDTP_TEST_FAULT", None)
    if fault:
        env["TSDTP_TEST_FAULT"] = fault
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(WORKER),
               *words]
    return subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=env, cwd=ROOT)


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """`result`, checked to have exited 0 (else its output is the assertion message)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


@torch.no_grad()
def update_difference(run: Path, reference: Path) -> float:
    """||params(run) - params(reference)|| / ||params(reference) - initial params||, over every parameter."""
    trained, config = load_checkpoint(run)
    expected, _ = load_checkpoint(reference)
    seed_everything(config.seed)
    initial = dict(build_model(config, load_tokenizer(config.model)).named_parameters())
    expected_params = dict(expected.named_parameters())
    difference = update = 0.0
    for name, value in trained.named_parameters():
        difference += float((value - expected_params[name]).pow(2).sum())
        update += float((expected_params[name] - initial[name]).pow(2).sum())
    return (difference / update) ** 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model_dir, glue_dir) -> dict[str, Path]:
    """One process trains ts-dtp and dense in this process; two processes train both under torchrun, then
    evaluate the one-process ts-dtp run sharded (into `eval.json`)."""
    root = tmp_path_factory.mktemp("runs")
    for method in METHODS:
        train(tiny_config(model_dir, method), root / f"single-{method}", progress=False)
    succeeded(launch(*[train_args(tiny_config(model_dir, method), root / f"ddp-{method}") for method in METHODS],
                     ["evaluate", str(root / "single-ts-dtp"), "2", str(root / "eval.json")]))
    return {"root": root, **{f"{kind}-{m}": root / f"{kind}-{m}" for kind in ("single", "ddp") for m in METHODS}}


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_train_the_parameters_one_process_trains(runs, method):
    single, ddp = (json.loads((runs[f"{kind}-{method}"] / "metrics.json").read_text()) for kind in ("single", "ddp"))
    assert update_difference(runs[f"ddp-{method}"], runs[f"single-{method}"]) < 1e-2
    assert ddp["steps"] == single["steps"] == 4
    assert ddp["data_parallel"] == {"processes": 2, "grad_accum": 1} and "data_parallel" not in single
    assert ddp["final"]["loss"] == pytest.approx(single["final"]["loss"], rel=1e-5)
    assert json.loads((runs[f"ddp-{method}"] / "config.json").read_text()) == json.loads(
        (runs[f"single-{method}"] / "config.json").read_text())


def test_sharded_evaluation_gives_the_numbers_of_one_process(runs, glue_dir):
    model, config = load_checkpoint(runs["single-ts-dtp"])
    tokenizer = load_tokenizer(config.model)
    _, split, _ = prepare_data(config, tokenizer, None, include_train=False)
    result, traces = evaluate_model(model, split, 2, tokenizer.pad_token_id, record_traces=True, tokenizer=tokenizer,
                                    progress=False)
    sharded = json.loads((runs["root"] / "eval.json").read_text())
    assert sharded["summary"] == json.loads(json.dumps(result.summary()))
    assert result.keep_ratio < 1.0 and result.n_eval == len(split) > 2
    pd.testing.assert_frame_equal(pd.DataFrame(sharded["traces"]), traces, check_dtype=False)


def test_an_interrupted_two_process_run_resumes_when_every_rank_sees_its_state(runs, model_dir, tmp_path):
    run_dir = tmp_path / "interrupted"
    command = train_args(tiny_config(model_dir, "ts-dtp"), run_dir)
    assert launch(command, fault="*:3:interrupt").returncode != 0
    assert torch.load(run_dir / "state.pt", weights_only=False)["step"] == 2
    unshared = launch(command, fault="1:-:unshared")
    assert unshared.returncode != 0
    assert ("tsdtp train: error: rank 1 sees state.pt step = 0, rank 0 sees 2: every process must see the same run "
            "directory") in unshared.stderr
    succeeded(launch(command))
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 4 and not (run_dir / "state.pt").exists()
    assert update_difference(run_dir, runs["ddp-ts-dtp"]) < 1e-5


def test_two_processes_resume_a_run_one_process_started(runs, model_dir, tmp_path, interrupt_on_call):
    run_dir = tmp_path / "started-alone"
    config = tiny_config(model_dir, "ts-dtp")
    interrupt_on_call(train_module, "collate", 3)
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, progress=False)
    assert torch.load(run_dir / "state.pt", weights_only=False)["step"] == 2
    succeeded(launch(train_args(config, run_dir)))
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 4
    assert update_difference(run_dir, runs["single-ts-dtp"]) < 1e-2


def test_a_rank_that_fails_stops_the_job_with_an_error_naming_it(model_dir, tmp_path):
    result = launch(train_args(tiny_config(model_dir, "none"), tmp_path / "run"), fault="1:2:raise")
    assert result.returncode != 0
    assert ("tsdtp train: error: rank 1 of 2 failed at step 2: RuntimeError: injected failure at step 2 "
            "(rank 0 stopped with it)") in result.stderr


def test_a_rank_that_hangs_stops_the_job_after_the_timeout_with_an_error_naming_it(model_dir, tmp_path):
    result = launch(train_args(tiny_config(model_dir, "ts-dtp"), tmp_path / "run", "--dist-timeout", "5"),
                    fault="1:2:hang")
    assert result.returncode != 0
    assert "tsdtp train: error: rank 1 (last at step 2) of 2 stopped responding: rank 0 lost it at step 2" in (
        result.stderr)


def test_a_batch_splits_into_contiguous_parts_of_near_equal_size():
    assert split_batch(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_batch([4, 5], 4) == [[4], [5], [], []]


def test_the_pipeline_launcher_trains_a_run_through_torchrun(model_dir, tmp_path, capfd):
    config = tiny_config(model_dir, "none")
    with launcher_environment("torchrun --standalone --nproc-per-node 2"):
        metrics, trained = ensure_trained(config, tmp_path / "run")
    assert trained and metrics["steps"] == 4 and metrics["data_parallel"]["processes"] == 2
    assert LAUNCHER_VARIABLE not in os.environ and run_finished(tmp_path / "run")
    assert "train sst2 none epoch 1/1: 100%" in capfd.readouterr().err


def test_a_profile_launcher_reaches_the_plan_and_a_bad_one_is_refused(tmp_path):
    step = {"id": "results", "notebook": "04_results.ipynb",
            "outputs": [{"table": "results_table.md", "caption": "Table."}]}
    profiles = {"ddp": {"launcher": "torchrun --nproc-per-node 2", "steps": [step]},
                "bad": {"launcher": ["torchrun"], "steps": [step]}, "empty": {"launcher": " ", "steps": [step]}}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"version": 1, "notebooks_dir": str(ROOT / "notebooks"),
                                                            "profiles": profiles}))
    assert make_plan("ddp", tmp_path / "pipeline.yaml").launcher == "torchrun --nproc-per-node 2"
    with pytest.raises(ConfigError, match="profile bad: launcher must be a command line"):
        make_plan("bad", tmp_path / "pipeline.yaml")
    with pytest.raises(ConfigError, match="launcher is empty"):
        make_plan("empty", tmp_path / "pipeline.yaml")
    assert launcher_words("torchrun --nproc-per-node 2")[:3] == [sys.executable, "-m", "torch.distributed.run"]


def test_commands_that_run_in_one_process_refuse_a_launch(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["eval", "--run-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("tsdtp eval: error: runs in one process; of the launched processes, only "
                                       "train, mt-train, llm-train, train-config share the work (start it without "
                                       "torchrun)\n")


@pytest.mark.parametrize("method", list(METHODS))
def test_accumulation_steps_give_the_gradient_of_the_whole_batch(base_model, tokenizer, method):
    model = copy.deepcopy(base_model)
    model.pruning = METHODS[method]
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    texts = [(text,) for text, _ in SST2_ROWS]
    ids, types = encode_texts(tokenizer, texts, 128)
    split = EncodedSplit(ids, types, [label for _, label in SST2_ROWS], texts)

    def gradient(grad_accum: int) -> tuple[torch.Tensor, float, dict[str, float]]:
        def step_loss(forward, indices):
            batch = collate(split, indices, tokenizer.pad_token_id)
            return model.loss(forward(batch), batch["labels"])

        model.zero_grad(set_to_none=True)
        loss, parts = DataParallelStep(model, step_loss, len, grad_accum).backward(list(range(7)))
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), loss, parts

    whole, loss, parts = gradient(1)
    for grad_accum in (3, 9):
        accumulated, accumulated_loss, accumulated_parts = gradient(grad_accum)
        assert (accumulated - whole).norm() < 1e-4 * whole.norm()
        assert accumulated_loss == pytest.approx(loss, rel=1e-6)
        assert accumulated_parts == pytest.approx(parts, rel=1e-5)
