"""Atomic file writes (a reader never sees half a file, and a crash never leaves one in place), and checked reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from tsdtp.errors import CheckpointError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(data)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    """`torch.save` to a temporary file, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        temporary = Path(handle.name)
    torch.save(obj, temporary)
    os.replace(temporary, path)


def load_torch_payload(path: Path, expected_format: str, advice: str = "") -> dict[str, Any]:
    """The dict that `atomic_torch_save` wrote to `path`, tagged `"format": expected_format`, tensors only.

    A CheckpointError names the file when it is no torch file (followed by `advice`) or has another format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is corrupt or not a torch file ({type(exc).__name__}: {exc}){advice}") from exc
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise CheckpointError(f"{path} is not a {expected_format} file")
    return payload
