"""Atomic file writes (a reader never sees half a file, and a crash never leaves one in place), checked reads,
and strict JSON (NaN and infinity become `null`).

A write goes to a temporary file `.<name>.<8 random characters>` beside its target and is renamed into
place; a failed or interrupted write removes it, and `remove_temporaries` clears what a killed process left.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsdtp.errors import CheckpointError, first_line

TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}$")
"""The name of an atomic write's temporary file: a dot, the target's name, a dot and `tempfile`'s 8 characters."""


def _write_beside(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` on a fresh temporary file beside `path`, then rename it to `path`; on failure, remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        temporary = Path(handle.name)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    _write_beside(path, lambda temporary: temporary.write_bytes(data))


def strict_json_value(value: Any) -> Any:
    """`value` with every non-finite float (NaN, inf) replaced by None, NumPy scalars made plain, tuples listed."""
    if isinstance(value, dict):
        return {key: strict_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(data: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """`data` as standard JSON text: `null` for NaN and infinity (`json.dumps` would write `NaN`)."""
    return json.dumps(strict_json_value(data), indent=indent, sort_keys=sort_keys, allow_nan=False)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` atomically as strict JSON (`strict_json`, keys sorted)."""
    atomic_write_bytes(path, (strict_json(data, sort_keys=True) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    """`torch.save` to a temporary file, then rename it into place."""
    _write_beside(path, lambda temporary: torch.save(obj, temporary))


def remove_temporaries(folder: Path, targets: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes left in `folder`; returns them.

    Only files named as `_write_beside` names them are touched, and with `targets` only those of these
    file names (e.g. `checkpoint.pt` matches `.checkpoint.pt.k2j4_x9a`).
    """
    wanted = None if targets is None else set(targets)
    removed = []
    for path in sorted(Path(folder).glob(".*")):
        match = TEMPORARY_NAME.match(path.name)
        if match and (wanted is None or match["target"] in wanted) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_torch_payload(path: Path, expected_format: str, advice: str = "") -> dict[str, Any]:
    """The dict that `atomic_torch_save` wrote to `path`, tagged `"format": expected_format`, tensors only.

    A CheckpointError names the file when it is no torch file (followed by `advice`) or has another format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is corrupt or not a torch file ({type(exc).__name__}: {first_line(exc)})"
                              f"{advice}") from exc
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise CheckpointError(f"{path} is not a {expected_format} file")
    return payload
