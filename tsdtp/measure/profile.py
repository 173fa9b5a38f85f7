"""Where inference time goes: a `torch.profiler` breakdown of the forward pass by component.

Each forward call runs inside a `tsdtp forward` range. Every profiled op's self time is
credited to the innermost named region around it (`tsdtp.core.regions`): the tsdtp engine and
the BERT adapter open those regions in their code, per layer and component; the library's
dense forward has none, so while it is profiled, forward hooks open the same regions around
its modules (`BertAdapter.module_components`). Any `aten::layer_norm` counts as `layernorm`,
whatever region it runs in; time under no region is `other`. The components therefore add
up exactly to the profiled forward time.

On CPU the clock is the host's self time of each op. On CUDA a second clock, `cuda`, sums
the kernel time each op launched. Per-op profiler overhead inflates many-small-op parts
(keep decisions, packing, other) most, so the shares are the result to read; the
unprofiled time of the same pass is reported beside them for scale.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile, record_function

from tsdtp.core.regions import COMPONENTS, LAYERNORM, OTHER, parse_region, region_name
from tsdtp.errors import ConfigError
from tsdtp.measure.devices import synchronize
from tsdtp.measure.methods import BenchSpec, BoundMethod
from tsdtp.measure.session import RUN_COLUMNS, BenchData, Session, check_measure_settings, measuring

FORWARD = "tsdtp forward"
LAYER_NORM_OP = "aten::layer_norm"
DEFAULT_PROFILE_BATCH_SIZES: tuple[int, ...] = (1, 32)
DEFAULT_PROFILE_METHODS = "dense,none,run"
"""What `tsdtp profile` breaks down unless `--methods` says otherwise."""

BREAKDOWN_COLUMNS: tuple[str, ...] = ("clock", "component", "layer", "total_ms", "ms_per_batch", "share",
                                      "unprofiled_ms_per_batch")
"""What `time_breakdown` returns, one row per clock, component and layer (layer <NA> outside layers).

clock: `cpu` (host self time of the ops) or `cuda` (kernel time). total_ms: the whole pass;
ms_per_batch: per forward call; share: of the clock's total over all components.
unprofiled_ms_per_batch: the same pass timed without the profiler (for scale).
"""

PROFILE_COLUMNS: tuple[str, ...] = (*RUN_COLUMNS, "clock", "component", "total_ms", "ms_per_batch", "share",
                                    "unprofiled_ms_per_batch", "torch_version")
"""The columns of profile.csv: one row per method, batch size, clock and component (all of `COMPONENTS`)."""
LAYER_PROFILE_COLUMNS: tuple[str, ...] = (*PROFILE_COLUMNS[:len(RUN_COLUMNS) + 2], "layer",
                                          *PROFILE_COLUMNS[len(RUN_COLUMNS) + 2:])
"""The columns of profile_layers.csv: as profile.csv, split by layer (only the parts that ran)."""


def attribute(events: Sequence[FunctionEvent], clock: str = "cpu") -> dict[tuple[str, int | None], float]:
    """Microseconds of self time per (component, layer) of every CPU op under a `tsdtp forward` range.

    `clock` is `cpu` (host self time) or `cuda` (self kernel time of each op). Ops outside
    any forward range (profiler start-up, synchronisation between calls) are left out.
    """
    if clock not in ("cpu", "cuda"):
        raise ConfigError(f"unknown clock {clock!r}; expected cpu or cuda")
    times: dict[tuple[str, int | None], float] = {}
    for event in events:
        if event.device_type != torch.autograd.DeviceType.CPU or event.is_async:
            continue
        key = _component_of(event)
        if key is not None:
            spent = event.self_cpu_time_total if clock == "cpu" else event.self_device_time_total
            times[key] = times.get(key, 0.0) + spent
    return times


def _component_of(event: FunctionEvent) -> tuple[str, int | None] | None:
    """The innermost region around `event` (layer norms win), or None outside a forward range."""
    found, layer_norm, node = None, False, event
    while node is not None:
        if node.name == FORWARD:
            return found or ((LAYERNORM, None) if layer_norm else (OTHER, None))
        if found is None:
            layer_norm = layer_norm or node.name == LAYER_NORM_OP
            named = parse_region(node.name)
            if named is not None:
                found = (LAYERNORM, named[1]) if layer_norm else named
        node = node.cpu_parent
    return None


def breakdown_frame(times: dict[tuple[str, int | None], float], n_batches: int, clock: str = "cpu"
                    ) -> pd.DataFrame:
    """Tidy rows (clock, component, layer, total_ms, ms_per_batch, share) from `attribute`'s microseconds."""
    if n_batches < 1:
        raise ConfigError(f"need at least one profiled batch (got {n_batches})")
    total = sum(times.values())
    order = {name: i for i, name in enumerate(COMPONENTS)}
    keys = sorted(times, key=lambda k: (order[k[0]], -1 if k[1] is None else k[1]))
    frame = pd.DataFrame({
        "clock": clock, "component": [k[0] for k in keys],
        "layer": pd.array([k[1] for k in keys], dtype="Int64"),
        "total_ms": [times[k] / 1e3 for k in keys],
    })
    frame["ms_per_batch"] = frame["total_ms"] / n_batches
    frame["share"] = frame["total_ms"] / (total / 1e3) if total > 0 else 0.0
    return frame


def by_component(frame: pd.DataFrame) -> pd.DataFrame:
    """Sum one pass's per-layer breakdown over layers: a row per clock and every component.

    Columns beyond the breakdown's (constant within one pass: method, batch size, ...) are kept.
    """
    summed = frame.groupby(["clock", "component"], sort=False)[["total_ms", "ms_per_batch", "share"]].sum()
    index = pd.MultiIndex.from_product([frame["clock"].unique(), COMPONENTS], names=["clock", "component"])
    result = summed.reindex(index, fill_value=0.0).reset_index()
    extra = [c for c in frame.columns if c not in result.columns and c != "layer"]
    for column in extra:
        result[column] = frame[column].iloc[0]
    return result


@contextmanager
def labelled_modules(modules: Sequence[tuple[nn.Module, str, int | None]]) -> Iterator[None]:
    """Open the region of each (module, component, layer) around its forward calls, via hooks."""
    open_ranges: list[record_function] = []

    def enter(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object) -> None:
            open_ranges.append(record_function(name))
            open_ranges[-1].__enter__()
        return hook

    def leave(module: nn.Module, args: object, output: object) -> None:
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for module, component, layer in modules:
        handles.append(module.register_forward_pre_hook(enter(region_name(component, layer))))
        handles.append(module.register_forward_hook(leave, always_call=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def time_breakdown(forward: Callable[[dict[str, torch.Tensor]], object], batches: Sequence[dict[str, torch.Tensor]],
                   device: torch.device, warmup: int = 1, trace_path: str | Path | None = None) -> pd.DataFrame:
    """Run `forward` over `batches`: `warmup` untimed passes, one timed pass, one profiled pass.

    Returns `BREAKDOWN_COLUMNS` rows of the profiled pass, per clock, component and layer
    (the `cuda` clock only on a CUDA device). `trace_path` also saves its Chrome trace.
    """
    if not batches:
        raise ConfigError("no batches to profile")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0 (got {warmup})")
    for _ in range(warmup):
        _run_pass(forward, batches, device)
    started = time.perf_counter()
    _run_pass(forward, batches, device)
    unprofiled = (time.perf_counter() - started) * 1e3 / len(batches)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _run_pass(forward, batches, device, label=True)
    if trace_path is not None:
        Path(trace_path).parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace_path))
    events = prof.events()
    clocks = ["cpu", "cuda"] if device.type == "cuda" else ["cpu"]
    frame = pd.concat([breakdown_frame(attribute(events, clock), len(batches), clock) for clock in clocks],
                      ignore_index=True)
    frame["unprofiled_ms_per_batch"] = unprofiled
    return frame[list(BREAKDOWN_COLUMNS)]


def _run_pass(forward: Callable[[dict[str, torch.Tensor]], object], batches: Sequence[dict[str, torch.Tensor]],
              device: torch.device, label: bool = False) -> None:
    """One pass over `batches`, each call in a `tsdtp forward` range when `label` (the wait for the device is not)."""
    for batch in batches:
        with record_function(FORWARD) if label else nullcontext():
            forward(batch)
        synchronize(device)


@dataclass(frozen=True)
class ProfileSettings:
    """How to profile: batch sizes, warm-up passes, threads, device, dtype, traces, [CLS]-only last layer."""

    batch_sizes: tuple[int, ...] = DEFAULT_PROFILE_BATCH_SIZES
    warmup: int = 1
    threads: int = 2
    device: str = "cpu"
    dtype: str = "fp32"
    sort_by_length: bool = False
    trace_dir: str | Path | None = None
    progress: bool = False
    cls_only_last_layer: bool = False

    def __post_init__(self) -> None:
        check_measure_settings(self.batch_sizes, self.warmup, self.threads, self.dtype)


@dataclass
class ProfileResult:
    """profile.csv rows (per component) and profile_layers.csv rows (per component and layer)."""

    components: pd.DataFrame
    layers: pd.DataFrame


def run_profile(specs: Sequence[BenchSpec], data: BenchData, settings: ProfileSettings) -> ProfileResult:
    """Profile every spec on `data` at each batch size; the models' own pruning is restored after."""
    components, layers = [], []
    with measuring(specs, data, settings) as session:
        for batch_size in settings.batch_sizes:
            batches = session.batches(batch_size, settings.sort_by_length)
            for method in session.methods:
                frame = _profile_method(session, method, batches, settings, batch_size)
                layers.append(frame[list(LAYER_PROFILE_COLUMNS)])
                components.append(by_component(frame)[list(PROFILE_COLUMNS)])
                if settings.progress:
                    total = frame["unprofiled_ms_per_batch"].iloc[0]
                    print(f"profile: batch {batch_size} {method.label}: {total:.2f} ms per batch unprofiled",
                          file=sys.stderr)
    return ProfileResult(pd.concat(components, ignore_index=True), pd.concat(layers, ignore_index=True))


def _profile_method(session: Session, method: BoundMethod, batches: list[dict[str, torch.Tensor]],
                    settings: ProfileSettings, batch_size: int) -> pd.DataFrame:
    """`time_breakdown` of one method (its library modules labelled when dense), with the run columns."""
    trace = None
    if settings.trace_dir is not None:
        name = f"{session.data.task}-{_slug(method.label)}-b{batch_size}-{settings.dtype}.json"
        trace = Path(settings.trace_dir) / name
    modules = method.model.adapter.module_components() if method.pruning is None else []
    with labelled_modules(modules):
        frame = time_breakdown(method, batches, session.device, settings.warmup, trace)
    columns = session.run_columns(method, batch_size, len(batches), settings.sort_by_length)
    return frame.assign(**columns, torch_version=torch.__version__)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")
