"""Where a task's data comes from: a local data directory (given, or `TSDTP_DATA_DIR`), else the hub.

The data-side twin of `tsdtp.hub`: both task packages find and read their local files through it
and fail with a `DataError` that names the path (and line) and what was expected there.

It also says which data a result or a run belongs to. The standard data is the folder
`TSDTP_DATA_DIR` names (the Makefile's `../shared/data`), or the hub when none is set: its labels
are the task's plain split names. Any other data directory is a `SourceTag` (its folder's name and
a short digest of its files' contents), added to split labels (`sst2 dev [mydata 1a2b3c4d]`) and to
evaluation file names, so results on other data never replace those on the standard data. A
`DataSource` (every file read, with its sha256) is what a run directory records as its training data.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsdtp.errors import DataError

DATA_DIR_VARIABLE = "TSDTP_DATA_DIR"
"""The environment variable naming the data directory when none is given."""

HUB = "hugging face hub"
"""The `location` of a `DataSource` read from the hub."""

DIGEST_CHARS = 8
"""Hex digits of a source digest shown in labels and file names."""

_LABEL_TAG = re.compile(rf" \[(?P<name>.+) (?P<digest>[0-9a-f]{{{DIGEST_CHARS}}})\]$")


def data_dir_from_env(data_dir: str | os.PathLike | None) -> Path | None:
    """The data directory given, else `TSDTP_DATA_DIR`, else None (use the hub)."""
    value = data_dir if data_dir is not None else os.environ.get(DATA_DIR_VARIABLE)
    return Path(value).expanduser() if value else None


def require_data_dir(data_dir: str | os.PathLike | None, needed_by: str, flag: str = "data_dir") -> Path:
    """`data_dir_from_env`, or a DataError saying that `needed_by` reads the shared data and how to give it."""
    found = data_dir_from_env(data_dir)
    if found is None:
        raise DataError(f"{needed_by} builds its prompts from the shared data: give {flag} or set {DATA_DIR_VARIABLE}")
    return found


def is_standard_data_dir(data_dir: str | os.PathLike | None) -> bool:
    """Whether `data_dir` is the standard data: none given (`TSDTP_DATA_DIR`, else the hub), or that same folder."""
    if data_dir is None:
        return True
    default = data_dir_from_env(None)
    return default is not None and Path(data_dir).expanduser().resolve() == default.resolve()


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


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file (remembered per path, size and modification time)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceTag:
    """A data source other than the standard one, as labels and file names show it."""

    name: str
    digest: str

    def label(self, split: str) -> str:
        """`split` labelled with this source, e.g. `sst2 dev [mydata 1a2b3c4d]`."""
        return f"{split} [{self.name} {self.digest}]"

    @property
    def file_suffix(self) -> str:
        """What evaluation file names on this source end with, e.g. `_data-1a2b3c4d`."""
        return f"_data-{self.digest}"


def labelled(split: str, tag: SourceTag | None) -> str:
    """`split` as results and metrics label it: plain on the standard data (`tag` None), else tagged."""
    return split if tag is None else tag.label(split)


def tag_of_label(label: str) -> SourceTag | None:
    """The source tag a split label ends with (`labelled`), or None for a label of the standard data."""
    match = _LABEL_TAG.search(label)
    return SourceTag(match["name"], match["digest"]) if match else None


@dataclass(frozen=True)
class DataSource:
    """The data a run reads: a folder and its files (path relative to the task's folder, sha256), or the hub."""

    location: str
    files: tuple[tuple[str, str], ...] = ()

    @classmethod
    def local(cls, data_dir: Path, task_folder: Path, paths: Iterable[Path]) -> DataSource:
        """The files `paths` under `task_folder` (inside `data_dir`), hashed."""
        files = tuple((path.relative_to(task_folder).as_posix(), file_sha256(path)) for path in paths)
        return cls(str(data_dir.expanduser().resolve()), files)

    @property
    def digest(self) -> str:
        """A sha256 over the files' relative paths and checksums (the same data in any folder has the same one)."""
        return hashlib.sha256("".join(f"{path} {sha}\n" for path, sha in self.files).encode()).hexdigest()

    @property
    def tag(self) -> SourceTag:
        """How labels name this source: its folder's name and the first `DIGEST_CHARS` of `digest`."""
        return SourceTag(Path(self.location).name or self.location, self.digest[:DIGEST_CHARS])

    def same_data(self, other: DataSource) -> bool:
        """Whether both are the hub, or both hold the same files with the same contents (wherever they are)."""
        if HUB in (self.location, other.location):
            return self.location == other.location
        return self.files == other.files

    def describe(self) -> str:
        """A short description for messages: the folder, its file count and digest (or the hub)."""
        if self.location == HUB:
            return f"the {HUB}"
        return f"{self.location} ({len(self.files)} files, digest {self.digest[:DIGEST_CHARS]})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: location, digest and one {path, sha256} per file."""
        return {"location": self.location, "digest": self.digest,
                "files": [{"path": path, "sha256": sha} for path, sha in self.files]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSource:
        """The source `to_dict` wrote (a KeyError or TypeError when it is not such a dict)."""
        return cls(str(data["location"]), tuple((str(f["path"]), str(f["sha256"])) for f in data["files"]))


def source_tag(data_dir: str | os.PathLike | None, source: Callable[[], DataSource]) -> SourceTag | None:
    """None on the standard data (`is_standard_data_dir`), else the tag of `source()` (the files read from it)."""
    return None if is_standard_data_dir(data_dir) else source().tag
