"""What bench and profile share: the runs and data they load, and the session they measure in.

`load_workload` turns a run directory and a `--methods` list into specs on loaded models and
the run's encoded evaluation split. `measuring` is the setup and teardown around a measurement:
it resolves the device and dtype, binds the specs to their models there (with a [CLS]-only last
layer when the settings ask), fixes the torch CPU threads and inference mode, and afterwards
restores the threads and every model's own pruning and last-layer setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.train import prepare_data
from tsdtp.errors import ConfigError
from tsdtp.hub import load_tokenizer
from tsdtp.measure.devices import DTYPES, device_name, resolve_device, resolve_dtype
from tsdtp.measure.methods import BenchSpec, BoundMethod, MethodRequest, bind_specs, parse_methods, resolve_pruning

RUN_COLUMNS: tuple[str, ...] = ("task", "model", "eval_split", "n_eval", "label", "method", "impl", "run_dir",
                                "device", "device_name", "threads", "dtype", "sorted_by_length", "batch_size",
                                "n_batches", "cls_only_last_layer")
"""The columns saying what was measured and how, shared by bench.csv and profile.csv (`Session.run_columns`)."""


@dataclass(frozen=True)
class BenchData:
    """The evaluation set every method runs on, and what to call it in the tables."""

    task: str
    model_name: str
    split_name: str
    split: EncodedSplit
    pad_id: int


@dataclass(frozen=True)
class LoadedRun:
    """A run directory's classifier and its training config."""

    run_dir: str
    model: PrunedClassifier
    config: TrainConfig


@dataclass(frozen=True)
class Workload:
    """The specs of a `--methods` list on their loaded runs, and the evaluation set they run on."""

    specs: list[BenchSpec]
    data: BenchData
    runs: dict[str, LoadedRun]


def load_runs(requests: list[MethodRequest], default_run_dir: str) -> dict[str, LoadedRun]:
    """Each run directory the requests name, loaded once; all must share one task and model."""
    runs: dict[str, LoadedRun] = {}
    for run_dir in [default_run_dir, *(r.run_dir for r in requests if r.run_dir)]:
        if run_dir not in runs:
            model, config = load_checkpoint(run_dir)
            runs[run_dir] = LoadedRun(run_dir, model, config)
    first = runs[default_run_dir].config
    for run in runs.values():
        if (run.config.task, run.config.model) != (first.task, first.model):
            raise ConfigError(f"{run.run_dir} is a {run.config.task}/{run.config.model} run; the benchmark "
                              f"compares methods on one task and encoder ({first.task}/{first.model})")
    return runs


def build_specs(requests: list[MethodRequest], runs: dict[str, LoadedRun], default_run_dir: str) -> list[BenchSpec]:
    """BenchSpecs for the requests, each on its run's loaded model; repeats are measured once.

    (`run` on a densely trained run is `none`, so the default list names it twice.)
    """
    specs: list[BenchSpec] = []
    for request in requests:
        run = runs[request.run_dir or default_run_dir]
        spec = BenchSpec(run.model, resolve_pruning(request, run.config.pruning), run_dir=run.run_dir)
        if spec not in specs:
            specs.append(spec)
    return specs


def load_bench_data(run: LoadedRun, data_dir: str | None = None, max_eval_samples: int | None = None) -> BenchData:
    """The run's evaluation split (optionally its first `max_eval_samples` examples), encoded."""
    tokenizer = load_tokenizer(run.config.model)
    config = dataclasses.replace(run.config, max_eval_samples=max_eval_samples or run.config.max_eval_samples)
    _, split, split_name = prepare_data(config, tokenizer, data_dir, include_train=False)
    return BenchData(run.config.task, run.config.model, split_name, split, tokenizer.pad_token_id)


def load_workload(run_dir: str, methods: str, data_dir: str | None = None, max_eval_samples: int | None = None
                  ) -> Workload:
    """Parse `methods` (a `--methods` list), load the runs it names and `run_dir`'s evaluation split."""
    requests = parse_methods(methods)
    runs = load_runs(requests, run_dir)
    specs = build_specs(requests, runs, run_dir)
    return Workload(specs, load_bench_data(runs[run_dir], data_dir, max_eval_samples), runs)


def check_measure_settings(batch_sizes: Sequence[int], warmup: int, threads: int, dtype: str) -> None:
    """ConfigError for settings no measurement can run with (bench and profile share them)."""
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ConfigError(f"batch sizes must be positive integers (got {batch_sizes})")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0 (got {warmup})")
    if threads < 1:
        raise ConfigError(f"threads must be >= 1 (got {threads})")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def eval_batches(data: BenchData, batch_size: int, sort_by_length: bool, device: torch.device
                 ) -> list[dict[str, torch.Tensor]]:
    """The evaluation set collated into batches of `batch_size`, on `device`."""
    order = batch_indices(data.split.lengths(), batch_size, shuffle=False, sort_by_length=sort_by_length)
    return [{k: v.to(device) for k, v in collate(data.split, indices, data.pad_id).items()} for indices in order]


class SessionSettings(Protocol):
    """The settings a measuring session needs (`BenchSettings` and `ProfileSettings` have them)."""

    threads: int
    device: str
    dtype: str
    cls_only_last_layer: bool


@dataclass
class Session:
    """The specs bound to their models on the device, inside `measuring`."""

    data: BenchData
    settings: SessionSettings
    device: torch.device
    methods: list[BoundMethod]

    def batches(self, batch_size: int, sort_by_length: bool) -> list[dict[str, torch.Tensor]]:
        """The evaluation set in batches of `batch_size` on the session's device, length-sorted or in dataset order."""
        return eval_batches(self.data, batch_size, sort_by_length, self.device)

    def run_columns(self, method: BoundMethod, batch_size: int, n_batches: int, sort_by_length: bool
                    ) -> dict[str, object]:
        """The `RUN_COLUMNS` of a table row measuring `method` at `batch_size` in the given batch order."""
        data, settings = self.data, self.settings
        return {
            "task": data.task, "model": data.model_name, "eval_split": data.split_name, "n_eval": len(data.split),
            "label": method.label, "method": method.method, "impl": method.impl, "run_dir": method.run_dir,
            "device": self.device.type, "device_name": device_name(self.device), "threads": settings.threads,
            "dtype": settings.dtype, "sorted_by_length": sort_by_length, "batch_size": batch_size,
            "n_batches": n_batches, "cls_only_last_layer": method.cls_only_last_layer,
        }


@contextmanager
def measuring(specs: Sequence[BenchSpec], data: BenchData, settings: SessionSettings) -> Iterator[Session]:
    """Bind `specs` on the settings' device and dtype; run the block with fixed threads in inference mode.

    Afterwards the thread count and each model's own pruning are restored, also on error.
    """
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    methods = bind_specs(specs, device, dtype, settings.cls_only_last_layer)
    trained = {id(m.model): (m.model, m.model.pruning, m.model.cls_only_last_layer) for m in methods}
    try:
        with fixed_threads(settings.threads), torch.inference_mode():
            yield Session(data, settings, device, methods)
    finally:
        for model, pruning, cls_only in trained.values():
            model.pruning = pruning
            model.cls_only_last_layer = cls_only
