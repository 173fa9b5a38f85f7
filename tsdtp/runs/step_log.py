"""The learning curve of a run: `train_log.jsonl`, the mean loss parts over every few training steps.

One JSON object a line, `{"step": s, "loss": ..., "ce": ..., ...}`: the mean of each part over the
steps since the previous line. About `LINES_PER_RUN` lines are written per run. A resumed run drops
the lines past the step it resumes from, so the curve never holds a step twice; the steps of an
interval cut short by the interruption are missing from it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

LOG_FILE = "train_log.jsonl"
"""The learning-curve file of a run directory."""

LINES_PER_RUN = 100
"""About how many lines a run's log gets (one every `total_steps // LINES_PER_RUN` steps, at least 1)."""


def read_step_log(run_dir: str | Path) -> list[dict[str, float]]:
    """The lines of a run's learning curve (an unreadable last line, from an interrupted write, is skipped)."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


class StepLog:
    """Averages the loss parts of each interval of `every` steps and appends them to the run's log.

    `write` False (a distributed run's ranks other than 0) keeps the averages but writes nothing.
    """

    def __init__(self, run_dir: Path, total_steps: int, resumed_step: int, write: bool = True) -> None:
        self.path = Path(run_dir) / LOG_FILE
        self.every = max(1, total_steps // LINES_PER_RUN)
        self.write = write
        if write:
            kept = [line for line in read_step_log(run_dir) if line["step"] <= resumed_step]
            self.path.write_text("".join(json.dumps(line) + "\n" for line in kept))
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0

    def add(self, step: int, parts: dict[str, float]) -> None:
        """Count one finished step (`step` steps done) and its parts; append a line at the end of an interval."""
        for name, value in parts.items():
            self.sums[name] += value
        self.count += 1
        if step % self.every:
            return
        if self.write:
            line = {"step": step, **{name: round(total / self.count, 5) for name, total in self.sums.items()}}
            with self.path.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
        self.sums.clear()
        self.count = 0
