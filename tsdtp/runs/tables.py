"""CSV tables that grow by upsert: a new row replaces the rows with the same key, the file is rewritten atomically.

Every table the workbench keeps (results.csv, translation.csv, bench.csv, profile.csv, ...) is
written through `upsert_csv`; the tables differ only in their key, column order and sorting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tsdtp.runs.io import atomic_write_bytes


def row_keys(table: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One string per row from its `keys` columns, missing values as empty (None and NaN alike, and a key column
    the table lacks, as in tables written before that column existed)."""
    cells = table.reindex(columns=list(keys)).apply(lambda column: column.map(lambda v: "" if pd.isna(v) else str(v)))
    return cells.agg("|".join, axis=1)


def upsert_csv(path: str | Path, rows: pd.DataFrame | Iterable[dict[str, Any]], keys: Sequence[str], *,
               columns: Sequence[str] | None = None, leading: Sequence[str] = (),
               sort_by: Sequence[str] = ()) -> pd.DataFrame:
    """Add `rows` to the CSV at `path`, replacing the rows whose `keys` match one of them, and rewrite it atomically.

    The kept old rows come first, in file order, then the new rows. `columns` fixes the table's
    columns and their order (others are dropped); otherwise the file's columns come first and new
    ones are appended, with `leading` moved to the front. `sort_by` sorts the rows, stably.
    Returns the table as written.
    """
    path = Path(path)
    new = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=new.columns)
    if not table.empty:
        table = table[~row_keys(table, keys).isin(set(row_keys(new, keys)))]
    table = pd.concat([table, new], ignore_index=True) if not table.empty else new
    if columns is not None:
        table = table[list(columns)]
    front = [c for c in leading if c in table.columns]
    table = table[front + [c for c in table.columns if c not in front]]
    if sort_by:
        table = table.sort_values(list(sort_by), kind="stable").reset_index(drop=True)
    atomic_write_bytes(path, table.to_csv(index=False).encode())
    return table
