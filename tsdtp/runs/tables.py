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


def key_cell(value: Any) -> str:
    """One key cell as text: missing values (None, NaN) empty, whole floats as integers (a column read back
    with a missing value is float: its `0.0` is the `0` of a new row)."""
    if pd.isna(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def row_keys(table: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One string per row from its `keys` columns (`key_cell`); a key column the table lacks counts as empty."""
    if table.empty:
        return pd.Series([], index=table.index, dtype=str)
    cells = table.reindex(columns=list(keys)).apply(lambda column: column.map(key_cell))
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
