"""Device and dtype selection for inference benchmarks, with clear errors for what is missing."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from tsdtp.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Accepted `--dtype` names. fp16 is CUDA only (CPU kernels for it are slow or missing)."""

DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")


def resolve_device(name: str, cuda_available: bool | None = None) -> torch.device:
    """`cpu`, `cuda` (an error without a GPU) or `auto` (CUDA when a GPU is visible, else CPU)."""
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if available else "cpu")
    if name == "cuda" and not available:
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype called `name` (fp32, bf16, fp16), checked against the device."""
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("dtype fp16 is only benchmarked on CUDA; use fp32 or bf16 on CPU")
    return DTYPES[name]


def device_name(device: torch.device) -> str:
    """A human-readable name of the device: the GPU's name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    """Wait for queued work on `device` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
