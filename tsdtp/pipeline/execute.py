"""One step's notebook under papermill: an encrypted kernel, its output forwarded as it comes, failures named.

The notebook's stdout and stderr (a training step's progress bar among them) are written to
`stream` while the cell runs, indented under the step's line. The kernel's transport is
encrypted with CurveZMQ keys the kernel manager provisions (`KernelManager.transport_encryption`)
when pyzmq supports it, else it runs over IPC; either way it is not plain TCP, so the kernel has
no "running over TCP without encryption" warning to print. The kernel process's own log (not
the notebook's output) is cut to critical messages: on shutdown jupyter_client interrupts the
kernel before stopping it, which now and then logs a harmless "KeyboardInterrupt caught in kernel"
error; a failing notebook or a dead kernel is reported by papermill, and here as a PipelineError.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TextIO

from tsdtp.errors import TsdtpError
from tsdtp.pipeline.plan import Plan, Step

KERNEL_START_S = 180
"""Seconds a kernel may take to start."""

KERNEL_ARGUMENTS: list[str] = ["--IPKernelApp.log_level=CRITICAL"]
"""Extra command-line arguments of the kernel: only critical messages from its own log."""


class PipelineError(TsdtpError):
    """A pipeline step failed while running."""


class ForwardedOutput:
    """A notebook's stdout and stderr written to one `target` as they come, every line indented by `prefix`.

    `channel("stdout")` and `channel("stderr")` are the file-like objects papermill writes to. When
    the other stream speaks in the middle of a line (a progress bar redrawn with `\\r`), a line
    break comes first, so the two never share a line.
    """

    def __init__(self, target: TextIO, prefix: str = "    ") -> None:
        self.target, self.prefix = target, prefix
        self._line_start, self._last = True, ""

    def channel(self, name: str) -> Channel:
        """The file-like object for stream `name`."""
        return Channel(self, name)

    def write(self, name: str, text: str) -> int:
        """Write `text` from stream `name`, indenting each line (a line starts after `\\n` or `\\r`)."""
        out = []
        if name != self._last and not self._line_start and text:
            out.append("\n")
            self._line_start = True
        self._last = name
        for piece in re.split(r"([\r\n])", text):
            if piece in ("\r", "\n"):
                self._line_start = True
            elif piece and self._line_start:
                out.append(self.prefix)
                self._line_start = False
            out.append(piece)
        self.target.write("".join(out))
        return len(text)


class Channel:
    """One stream of a `ForwardedOutput`, as a file papermill can write to."""

    def __init__(self, output: ForwardedOutput, name: str) -> None:
        self.output, self.name = output, name

    def write(self, text: str) -> int:
        """Forward `text`; returns its length."""
        return self.output.write(self.name, text)

    def flush(self) -> None:
        """Flush the target."""
        self.output.target.flush()


def kernel_config() -> Any:
    """traitlets config for the kernel manager: CurveZMQ transport encryption when available, else IPC."""
    import zmq  # with the notebook extras only, as papermill
    from traitlets.config import Config

    manager = {"transport_encryption": "auto"} if zmq.has("curve") else {"transport": "ipc"}
    return Config({"KernelManager": manager})


def execute_notebook(plan: Plan, step: Step, parameters: dict[str, Any], executed: Path,
                     stream: TextIO | None = None) -> None:
    """Run the step's notebook into `executed`, its output forwarded to `stream` (None: kept in the notebook only).

    Raises PipelineError naming the notebook and the cell when it fails.
    """
    import papermill  # papermill takes seconds to import: only when a notebook runs
    from papermill.exceptions import PapermillExecutionError

    forward = ForwardedOutput(stream) if stream is not None else None
    try:
        papermill.execute_notebook(str(step.notebook), str(executed), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(plan.root), start_timeout=KERNEL_START_S,
                                   stdout_file=forward and forward.channel("stdout"),
                                   stderr_file=forward and forward.channel("stderr"), coalesce_streams=True,
                                   extra_arguments=KERNEL_ARGUMENTS, config=kernel_config())
    except PapermillExecutionError as exc:
        first = next((line for line in exc.source.splitlines() if line.strip()), "")
        raise PipelineError(
            f"notebook {step.notebook.name} (step {step.id}) failed in cell {exc.cell_index + 1} "
            f"(In [{exc.exec_count}], starting `{first}`): {exc.ename}: {exc.evalue}\n"
            f"The partly executed copy is {executed}; {plan.out_dir} still holds the last good run.") from None
    except Exception as exc:  # kernel death, start timeout: papermill raises many types
        raise PipelineError(f"notebook {step.notebook.name} (step {step.id}) could not run: "
                            f"{type(exc).__name__}: {exc}\nThe partly executed copy is {executed}; "
                            f"{plan.out_dir} still holds the last good run.") from exc
