"""Training through a launcher: `tsdtp.runs.cache.ensure_trained` runs `tsdtp train-config` under, e.g.,
`torchrun --nproc-per-node 2` when `TSDTP_LAUNCHER` names one (a pipeline profile's `launcher` sets it).

The run's config goes to the launched command as a JSON file; the command trains it into the run
directory (every process of the launch joining the process group, `tsdtp.runs.distributed`), and its
output is forwarded as it comes. A launcher whose first word is `torchrun` runs as
`<this Python> -m torch.distributed.run`, so the launch uses this environment's torch whatever is on PATH.
"""

from __future__ import annotations

import codecs
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tsdtp.errors import ConfigError, TsdtpError
from tsdtp.runs.kinds import RunConfig
from tsdtp.runs.run_dir import read_metrics

LAUNCHER_VARIABLE = "TSDTP_LAUNCHER"
"""The environment variable naming the launcher training runs go through (unset: train in this process)."""

TRAIN_CONFIG_COMMAND: tuple[str, ...] = ("-m", "tsdtp.cli", "train-config")
"""What the launcher starts: the `tsdtp train-config CONFIG --run-dir DIR` command, as a module."""


class LaunchError(TsdtpError):
    """A launched training command failed."""


def launcher_from_env() -> str | None:
    """The launcher `TSDTP_LAUNCHER` names, or None to train in this process."""
    return os.environ.get(LAUNCHER_VARIABLE) or None


def launcher_words(launcher: str) -> list[str]:
    """The launcher's command line as words; `torchrun` becomes this Python's `-m torch.distributed.run`."""
    try:
        words = shlex.split(launcher)
    except ValueError as exc:
        raise ConfigError(f"launcher {launcher!r} is not a command line ({exc})") from exc
    if not words:
        raise ConfigError("launcher is empty; expected e.g. 'torchrun --nproc-per-node 2'")
    return [sys.executable, "-m", "torch.distributed.run", *words[1:]] if words[0] == "torchrun" else words


@contextmanager
def launcher_environment(launcher: str | None) -> Iterator[None]:
    """Set `TSDTP_LAUNCHER` to `launcher` for the block (for the processes it starts), then restore it."""
    previous = os.environ.get(LAUNCHER_VARIABLE)
    if launcher is not None:
        launcher_words(launcher)
        os.environ[LAUNCHER_VARIABLE] = launcher
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LAUNCHER_VARIABLE, None)
        else:
            os.environ[LAUNCHER_VARIABLE] = previous


def train_launched(launcher: str, config: RunConfig, run_dir: Path, data_dir: str | None) -> dict[str, Any]:
    """Train `config` into `run_dir` with `tsdtp train-config` under `launcher`; returns the run's metrics.

    The command's output (stdout and stderr) is forwarded to this process's stderr as it comes; a failure
    raises LaunchError with the exit status and the command.
    """
    with tempfile.TemporaryDirectory(prefix="tsdtp-launch-") as folder:
        config_file = Path(folder) / "config.json"
        config_file.write_text(json.dumps(config.to_dict()))
        command = [*launcher_words(launcher), *TRAIN_CONFIG_COMMAND, str(config_file), "--run-dir", str(run_dir),
                   *(["--data-dir", str(data_dir)] if data_dir is not None else [])]
        status = _forwarding(command)
    if status != 0:
        raise LaunchError(f"training {run_dir} through `{launcher}` failed (exit status {status}); its output is "
                          f"above. The command was: {shlex.join(command)}")
    return read_metrics(Path(run_dir)) or {}


def _forwarding(command: list[str]) -> int:
    """Run `command`, its stdout and stderr written to our stderr as they come (progress bars too); its exit status."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        assert process.stdout is not None
        for chunk in iter(lambda: process.stdout.read1(4096), b""):  # type: ignore[union-attr]
            sys.stderr.write(decoder.decode(chunk))
            sys.stderr.flush()
        return process.wait()
