"""Figures a notebook could not make because their data is missing: a `<name>.pending` note beside the figures.

A figure notebook that finds no data for a declared figure (e.g. keep traces not yet in
`reports/data/`) calls `mark_pending` instead of drawing it; `tsdtp reproduce` reads the notes
(`read_pending`), reports one line per figure and keeps the figure from the last run that had its data.
"""

from __future__ import annotations

from pathlib import Path

from tsdtp.runs.io import atomic_write_bytes

PENDING_SUFFIX = ".pending"
"""A note `<figures_dir>/<figure stem>.pending` holds the one-line reason the figure was not made."""


def mark_pending(name: str, reason: str, out_dir: str | Path) -> str:
    """Leave the note that figure `name` awaits its data (`reason`, one line); returns it as a Markdown line."""
    reason = " ".join(reason.split())
    atomic_write_bytes(Path(out_dir) / f"{name}{PENDING_SUFFIX}", reason.encode())
    return f"**Not drawn:** `{name}` awaits its data: {reason}."


def read_pending(folder: Path) -> dict[str, str]:
    """Figure stem -> reason for every note in `folder` (none when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {path.name[: -len(PENDING_SUFFIX)]: path.read_text().strip()
            for path in sorted(folder.glob(f"*{PENDING_SUFFIX}"))}
