"""Training's `--device`: the CPU path as before, clear errors for a GPU that is not there, files that load on
any device. (The GPU path itself needs a GPU; on a CPU-only machine these tests cover what surrounds it.)"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from tsdtp.classification.checkpoint import load_checkpoint, save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.train import train
from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.errors import ConfigError
from tsdtp.runs.device import training_device
from tsdtp.runs.io import atomic_torch_save
from tsdtp.runs.run_dir import STATE_FILE
from tsdtp.runs.training_loop import load_trainer_state

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where torch sees no GPU")


def test_cuda_without_a_gpu_is_an_error_naming_the_flag():
    with pytest.raises(ConfigError, match=r"^--device cuda: torch sees no CUDA GPU \(torch.cuda.is_available\(\) is "
                                          r"False\); train with --device cpu, or auto"):
        training_device("cuda", cuda_available=False)
    assert training_device("auto", cuda_available=False) == torch.device("cpu")
    assert training_device("cpu", cuda_available=True) == torch.device("cpu")


def test_more_processes_on_a_node_than_gpus_is_an_error(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(ConfigError, match=r"^--device auto: torchrun starts 4 processes on this node but torch sees "
                                          r"2 GPU\(s\); .* start at most --nproc-per-node 2, or train with --device "
                                          "cpu$"):
        training_device("auto", cuda_available=True, gpu_count=2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert training_device("cuda", cuda_available=True, gpu_count=2) == torch.device("cuda", 1)


@no_gpu
@pytest.mark.parametrize("command", ["train", "mt-train", "llm-train"])
def test_a_training_command_asked_for_cuda_without_a_gpu_stops_before_the_run_starts(command, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([command, "--device", "cuda", "--run-dir", str(run_dir)]) == 2
    assert capsys.readouterr().err.startswith(f"tsdtp {command}: error: --device cuda: torch sees no CUDA GPU")
    assert not run_dir.exists()


@no_gpu
def test_train_config_asked_for_cuda_without_a_gpu_is_refused_too(tmp_path, capsys):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(TrainConfig().to_dict()))
    assert main(["train-config", str(config_file), "--device", "cuda", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("tsdtp train-config: error: --device cuda: torch sees no CUDA GPU")
    assert not (tmp_path / "run").exists()


def tiny_config() -> TrainConfig:
    return TrainConfig(task="sst2", epochs=1.0, batch_size=8, lr=1e-4, max_train_samples=16, max_eval_samples=8,
                       pruning=PruningConfig(method="ts-dtp", k=0.5))


def test_training_with_device_cpu_gives_the_parameters_of_the_default(tmp_path, glue_dir):
    config = tiny_config()
    train(config, tmp_path / "default", str(glue_dir), progress=False)
    args = ["--task", "sst2", "--epochs", "1", "--batch-size", "8", "--lr", "1e-4", "--max-train-samples", "16",
            "--max-eval-samples", "8", "--method", "ts-dtp", "--k", "0.5"]
    assert main(["train", "--device", "cpu", "--run-dir", str(tmp_path / "cpu"), "--data-dir", str(glue_dir),
                 *args]) == 0
    default, _ = load_checkpoint(tmp_path / "default")
    on_cpu, cpu_config = load_checkpoint(tmp_path / "cpu")
    assert cpu_config == config
    before = dict(default.named_parameters())
    assert all(torch.equal(parameter, before[name]) for name, parameter in on_cpu.named_parameters())
    assert (tmp_path / "cpu" / "config.json").read_text() == (tmp_path / "default" / "config.json").read_text()


def as_if_saved_on_a_gpu(path: Path) -> None:
    """Rewrite the torch.save file `path` so that its tensors say they were saved from `cuda:0`."""
    with zipfile.ZipFile(path) as saved:
        entries = [(info.filename, saved.read(info)) for info in saved.infolist()]
    cpu, gpu = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"  # the storages' location, a pickled string
    with zipfile.ZipFile(path, "w") as rewritten:
        for name, data in entries:
            if name.endswith("/data.pkl"):
                assert cpu in data
                data = data.replace(cpu, gpu)
            rewritten.writestr(name, data)


@no_gpu
def test_files_written_from_a_gpu_load_on_the_cpu(tmp_path, base_model):
    save_checkpoint(tmp_path, base_model, tiny_config())
    atomic_torch_save(tmp_path / STATE_FILE, {"model": {"weight": torch.ones(2)}, "step": 3})
    as_if_saved_on_a_gpu(tmp_path / "checkpoint.pt")
    as_if_saved_on_a_gpu(tmp_path / STATE_FILE)
    with pytest.raises(RuntimeError, match="on a CUDA device"):
        torch.load(tmp_path / STATE_FILE, weights_only=False)
    loaded, _ = load_checkpoint(tmp_path)
    expected = dict(base_model.named_parameters())
    assert all(torch.equal(parameter, expected[name]) for name, parameter in loaded.named_parameters())
    state = load_trainer_state(tmp_path)
    assert state is not None and state["model"]["weight"].device == torch.device("cpu") and state["step"] == 3
