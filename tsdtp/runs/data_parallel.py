"""The gradient of one global batch, split over the ranks of a distributed run and over accumulation steps.

Every rank plans the same epochs (the plan is seeded per epoch), so every rank holds every global batch.
`split_batch` cuts a global batch into `world_size x grad_accum` contiguous parts of near-equal size;
accumulation step m of rank r runs part `m * world_size + r`. The model runs under
`DistributedDataParallel`, which averages the gradients over the ranks, so each part's loss is scaled by
`world_size` times its share of the batch's loss units (examples, or target tokens for translation): the
task loss's gradient is then that of its average over the global batch, as one process computes it,
however unevenly the batch splits.

The pruning terms are no such average: they are functions of batch means (the mean soft keep rate, the
mean importance; `tsdtp.core.losses`). So each part computes them on the whole global batch's
per-example statistics (`BATCH_STATISTICS`), every other part's rows held constant and its own rows live,
their gradient scaled so that the parts' gradients add up to the gradient of the global terms. The other
ranks' rows are gathered as the step runs; with accumulation, a first pass without gradients collects
every part's rows (the torch RNG replayed, so dropout draws the same masks in both passes). The loss is
thus the single-process loss exactly, up to float rounding. In one process with `grad_accum` 1 the step
is the plain `loss.backward()` it always was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from tsdtp.core.pruned_model import PrunedModel
from tsdtp.runs.device import model_device
from tsdtp.runs.distributed import gather_objects, gather_rows, ranks, sum_over_ranks

Forward = Callable[[dict[str, torch.Tensor]], Any]
"""Runs the model on a collated batch: the model itself in one process, its DDP wrapper in a distributed run."""

StepLoss = Callable[[Forward, list[int]], tuple[torch.Tensor, dict[str, float]]]
"""Loss of one batch (given by its example indices, run through `Forward`) and its parts as floats."""

LossWeight = Callable[[list[int]], int]
"""How many units a batch's task loss averages over: its examples (`len`), or its target tokens."""

BATCH_STATISTICS: tuple[str, ...] = ("soft_keep", "mean_importance")
"""The per-example `EngineOutput` fields whose batch means the pruning terms take."""

Statistics = dict[str, torch.Tensor]
"""The rows of `BATCH_STATISTICS` of every part of a global batch, in the batch's order."""


def split_batch(indices: list[int], parts: int) -> list[list[int]]:
    """`indices` cut into `parts` contiguous parts whose sizes differ by one at most (the first ones larger)."""
    size, larger = divmod(len(indices), parts)
    bounds = [0]
    for part in range(parts):
        bounds.append(bounds[-1] + size + (part < larger))
    return [indices[start:end] for start, end in zip(bounds, bounds[1:])]


class _ScaledGradient(torch.autograd.Function):
    """The identity, whose backward multiplies the gradient by `gain`."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, gain: float) -> torch.Tensor:
        ctx.gain = gain
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.gain, None


@dataclasses.dataclass(frozen=True)
class _Part:
    """One rank's part of one accumulation step: its examples, where its rows start in the global batch and
    how many count (none for a stand-in), and its share of the batch's loss units."""

    indices: list[int]
    start: int
    count: int
    share: float


class DataParallelStep:
    """Forward and backward of global batches for `wrapper`: whole in one process, split over ranks and
    `grad_accum` accumulation steps otherwise (the model then runs under DDP, on its GPU if it is on one)."""

    def __init__(self, wrapper: PrunedModel, step_loss: StepLoss, loss_weight: LossWeight, grad_accum: int = 1
                 ) -> None:
        self.wrapper, self.step_loss, self.loss_weight, self.grad_accum = wrapper, step_loss, loss_weight, grad_accum
        self.ranks = ranks()
        self.device = model_device(wrapper)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = (DistributedDataParallel(wrapper, device_ids=device_ids, find_unused_parameters=True)
                    if self.ranks.world_size > 1 else None)

    def backward(self, indices: list[int]) -> tuple[float, dict[str, float]]:
        """Accumulate the gradient of global batch `indices`' loss; returns that loss and its parts (global means)."""
        mine, rows = self._parts(indices)
        statistics = self._statistics(mine, rows) if self.grad_accum > 1 and self.wrapper.engine_mode().trains else None
        loss_sum, part_sums = 0.0, {}
        for step, part in enumerate(mine):
            with self._synchronising(step == self.grad_accum - 1):
                step_rows = rows[step * self.ranks.world_size:(step + 1) * self.ranks.world_size]
                forward = self._forward(part, step_rows, statistics)
                loss, values = self.step_loss(forward, part.indices)
                scale = part.share * self.ranks.world_size
                (loss if scale == 1.0 else loss * scale).backward()
            loss_sum += part.share * loss.item() if part.count else 0.0
            for key, value in values.items():  # every rank sums the same keys, so the sums reduce together
                part_sums[key] = part_sums.get(key, 0.0) + (part.share * value if part.count else 0.0)
        totals = sum_over_ranks([loss_sum, *part_sums.values()])
        return totals[0], dict(zip(part_sums, totals[1:]))

    def _parts(self, indices: list[int]) -> tuple[list[_Part], list[int]]:
        """This rank's part of each accumulation step, and the rows of every part of the batch in order.

        A rank whose part is empty (a batch smaller than the parts) runs the batch's first example as a
        stand-in that counts for nothing, so that every rank takes part in every collective.
        """
        world_size, rank = self.ranks.world_size, self.ranks.rank
        parts = split_batch(indices, world_size * self.grad_accum)
        rows = [len(part) for part in parts]
        total = sum(self.loss_weight(part) for part in parts)
        mine = []
        for step in range(self.grad_accum):
            index = step * world_size + rank
            part = parts[index]
            mine.append(_Part(part or indices[:1], sum(rows[:index]), len(part), self.loss_weight(part) / total))
        return mine, rows

    def _forward(self, part: _Part, step_rows: list[int], statistics: Statistics | None) -> Forward:
        """The model that runs `part`, whose output's batch statistics cover the global batch: the rows in
        `statistics`, else those of this accumulation step's parts (`step_rows`), gathered as it runs."""
        if self.ddp is None and statistics is None:
            return self.wrapper
        model = self.ddp if self.ddp is not None else self.wrapper
        rank = self.ranks.rank

        def forward(batch: dict[str, torch.Tensor]) -> Any:
            output = model(batch)
            engine, spliced = output.engine, {}
            for name in BATCH_STATISTICS:
                live = getattr(engine, name)
                if live is None:
                    continue
                if statistics is not None:
                    batch_rows, start = statistics[name], part.start
                else:
                    batch_rows, start = gather_rows(live, step_rows), sum(step_rows[:rank])
                spliced[name] = _splice(batch_rows, live, start, part)
            return dataclasses.replace(output, engine=dataclasses.replace(engine, **spliced)) if spliced else output

        return forward

    def _statistics(self, mine: list[_Part], rows: list[int]) -> Statistics:
        """Every part's rows of the batch statistics, from a pass without gradients (the RNG replayed after)."""
        engines = []

        def capture(batch: dict[str, torch.Tensor]) -> Any:
            output = self.wrapper(batch)
            engines.append(output.engine)
            return output

        replayed = [self.device] if self.device.type == "cuda" else []  # dropout on a GPU draws from its generator
        with torch.no_grad(), torch.random.fork_rng(devices=replayed):
            for part in mine:
                self.step_loss(capture, part.indices)
        world_size = self.ranks.world_size
        return {name: torch.cat([gather_rows(getattr(engine, name), rows[step * world_size:(step + 1) * world_size])
                                 for step, engine in enumerate(engines)])
                for name in BATCH_STATISTICS if getattr(engines[0], name) is not None}

    def _synchronising(self, last: bool) -> Any:
        """DDP synchronises the gradients on the last accumulation step only."""
        return self.ddp.no_sync() if self.ddp is not None and not last else nullcontext()


def _splice(batch_rows: torch.Tensor, live: torch.Tensor, start: int, part: _Part) -> torch.Tensor:
    """`batch_rows` with the part's rows, from `start` on, replaced by its `live` rows, their gradient scaled by
    1 / share: the DDP average and the loss scale then leave each row the gradient of the global terms."""
    if not part.count:
        return batch_rows
    own = _ScaledGradient.apply(live[: part.count], 1.0 / part.share)
    return torch.cat([batch_rows[:start], own, batch_rows[start + part.count:]])


def rank_rng_states(device: torch.device) -> dict[str, list[torch.Tensor]]:
    """What state.pt keeps of the ranks' generators, each in rank order: their torch (CPU) RNG states in a
    distributed run (`torch_rng_ranks`), and on a GPU, whose generator dropout there draws from, its states
    (`cuda_rng_ranks`). Nothing for one process on the CPU."""
    states = {"torch_rng_ranks": gather_objects(torch.get_rng_state())} if ranks().world_size > 1 else {}
    if device.type == "cuda":
        states["cuda_rng_ranks"] = gather_objects(torch.cuda.get_rng_state(device))
    return states


def separate_rng_streams(state: Mapping[str, Any] | None, device: torch.device) -> None:
    """Give each rank of a distributed run its own torch RNG stream (dropout): the one it had when `state` (a
    state.pt with `rank_rng_states` of as many ranks) was saved, else one drawn from the state every rank
    shares; one process keeps its stream as it is. Resuming on a GPU, its generator too: the saved one, else
    one drawn from the CPU stream (left as it was), so that the ranks keep apart."""
    mine, state = ranks(), state or {}
    saved = state.get("torch_rng_ranks")
    if mine.world_size > 1 and saved is not None and len(saved) == mine.world_size:
        torch.set_rng_state(saved[mine.rank])
    elif mine.world_size > 1:
        torch.manual_seed(int(torch.randint(2**62, ())) + mine.rank)
    if device.type != "cuda" or not state:
        return
    saved = state.get("cuda_rng_ranks")
    if saved is not None and len(saved) == mine.world_size:
        torch.cuda.set_rng_state(saved[mine.rank], device)
        return
    with torch.random.fork_rng(devices=[]):
        torch.cuda.manual_seed(int(torch.randint(2**62, ())))
