"""The device a training run uses (`--device`): the CPU, as always, or a CUDA GPU, one per process under torchrun.

The device is an execution choice like the number of processes, not part of the run's config or hash: a run
trained on a GPU is the cached run of its config, and its files load on any device (every checkpoint loads
with `map_location="cpu"`). Batches are collated on the CPU and moved with `on_device`; results that leave a
batch (token counts, gathered outcomes) come back to the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from tsdtp.errors import ConfigError

TRAINING_DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
"""Accepted `--device` names for training: auto is CUDA when torch sees a GPU, else the CPU."""

CPU = torch.device("cpu")


def training_device(name: str, cuda_available: bool | None = None, gpu_count: int | None = None) -> torch.device:
    """The device this process trains on: the CPU, or `cuda:LOCAL_RANK` (torchrun's rank on this node, 0 alone).

    `--device cuda` without a GPU, or with fewer GPUs than torchrun starts processes on this node
    (LOCAL_WORLD_SIZE), is a ConfigError naming the flag. `cuda_available` and `gpu_count` default to torch's.
    """
    if name not in TRAINING_DEVICES:
        raise ConfigError(f"--device {name!r} is not a training device; expected one of {', '.join(TRAINING_DEVICES)}")
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name == "cpu" or (name == "auto" and not available):
        return CPU
    if not available:
        raise ConfigError("--device cuda: torch sees no CUDA GPU (torch.cuda.is_available() is False); train with "
                          "--device cpu, or auto to use a GPU only where there is one")
    gpus = torch.cuda.device_count() if gpu_count is None else gpu_count
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if processes > gpus:
        raise ConfigError(f"--device {name}: torchrun starts {processes} processes on this node but torch sees "
                          f"{gpus} GPU(s); each process trains on a GPU of its own, so start at most "
                          f"--nproc-per-node {gpus}, or train with --device cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def on_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """`batch`'s tensors on `device` (the same tensors when they are there already)."""
    return {name: tensor.to(device) for name, tensor in batch.items()}


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of `model`'s parameters (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def draw_generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on `device` seeded with `seed`, for the `random` method's draws at evaluation."""
    return torch.Generator(device=device).manual_seed(seed)
