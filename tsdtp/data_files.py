"""Where a task's data comes from: a local data directory (given, or `TSDTP_DATA_DIR`), else the hub.

The data-side twin of `tsdtp.hub`: both task packages find and read their local files through it
and fail with a `DataError` that names the path (and line) and what was expected there.
"""

from __future__ import annotations

import gzip
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


def read_text(path: Path, expected: str, gzipped: bool = False) -> str:
    """The text of a UTF-8 file (gzipped or not), a leading byte-order mark removed.

    A DataError names the file and `expected` when it is missing or unreadable, and the line of the
    first byte that is not UTF-8.
    """
    require_file(path, expected)
    try:
        data = gzip.decompress(path.read_bytes()) if gzipped else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}; expected {expected}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8; expected {expected} "
                        "encoded as UTF-8 (re-save the file as UTF-8)") from None
    return text.removeprefix("\ufeff")
