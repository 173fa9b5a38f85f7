"""Where a task's data comes from: a local data directory (given, or `TSDTP_DATA_DIR`), else the hub.

The data-side twin of `tsdtp.hub`: both task packages find their local files through it and
fail with a `DataError` that names the path and what was expected there.
"""

from __future__ import annotations

import os
from pathlib import Path

from tsdtp.errors import DataError

DATA_DIR_VARIABLE = "TSDTP_DATA_DIR"
"""The environment variable naming the data directory when none is given."""


def data_dir_from_env(data_dir: str | os.PathLike | None) -> Path | None:
    """The data directory given, else `TSDTP_DATA_DIR`, else None (use the hub)."""
    value = data_dir if data_dir is not None else os.environ.get(DATA_DIR_VARIABLE)
    return Path(value).expanduser() if value else None


def require_file(path: Path, expected: str) -> Path:
    """`path`, or a DataError naming it and `expected` (what the file should hold) when it is missing."""
    if not path.is_file():
        raise DataError(f"missing data file {path}: expected {expected}")
    return path
