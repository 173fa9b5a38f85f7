"""The results table and any other frame as files: CSV, GitHub Markdown and booktabs LaTeX, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tsdtp.runs.io import atomic_write_bytes


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.{digits}f}"
    return "" if value is None else str(value)


TABLE_DIGITS: dict[str, int] = {"k": 2, "gamma": 2, "metric": 2, "keep_ratio": 3, "flops_ratio": 3,
                                "speedup": 2, "memory_mb": 1}
"""Decimals shown per column in the Markdown and LaTeX tables."""


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (empty cells for missing values)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c], TABLE_DIGITS.get(c, 3)) for c in table.columns) + " |")
    return "\n".join(lines) + "\n"


LATEX_SPECIALS: dict[str, str] = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def latex_table(table: pd.DataFrame) -> str:
    """A booktabs LaTeX tabular (numbers right-aligned)."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(table[c]) else "l" for c in table.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_latex_escape(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        cells = [_latex_escape(_cell(row[c], TABLE_DIGITS.get(c, 3))) for c in table.columns]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: str, out_dir: str | Path) -> list[Path]:
    """Write `<stem>.csv`, `.md` and `.tex` into `out_dir`, each atomically; returns the paths."""
    out_dir = Path(out_dir)
    contents = {"csv": table.to_csv(index=False), "md": markdown_table(table), "tex": latex_table(table)}
    paths = []
    for suffix, text in contents.items():
        path = out_dir / f"{stem}.{suffix}"
        atomic_write_bytes(path, text.encode())
        paths.append(path)
    return paths
