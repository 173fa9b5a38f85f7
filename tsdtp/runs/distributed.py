"""Several processes on one run: the process group of a `torchrun` launch, who is who, and the collectives
training and evaluation use.

`torchrun --nproc-per-node N` (and `--nnodes M`) starts the same command N times per node with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Inside `process_group()` those processes form one
process group, gloo on the CPU and NCCL on GPUs (`tsdtp.runs.device`, one GPU per process), whose
collectives give up after a timeout. Outside a launch
every helper here answers for a single process (rank 0 of 1, nothing to gather), so the single-process path
runs exactly as before.

A rank that fails reports its error in the launch's key-value store before it exits; a rank whose
collective fails (a peer's connection closed, or nothing arrived within the timeout) reads those reports
and stops with a `DistributedError` naming the rank that failed, or the ranks that stopped responding,
and where each one was (`mark`). Without it, torchrun names the first rank to exit: the one that waited.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from transformers.utils import logging as transformers_logging

from tsdtp.errors import ConfigError, TsdtpError, first_line
from tsdtp.runs.device import CPU

DEFAULT_TIMEOUT_S = 600.0
"""Seconds a collective waits for the other ranks before the job stops (`tsdtp train --dist-timeout`)."""

REPORT_WAIT_S = 10.0
"""Seconds a rank that lost its peers waits for them to report what happened, before naming the silent ones."""

Item = TypeVar("Item")


class DistributedError(TsdtpError):
    """Another rank of a distributed run failed or stopped responding."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: its rank among `world_size` processes (0 of 1 outside a launch)."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes files and prints."""
        return self.rank == 0


@dataclass
class _Group:
    """The joined process group: our ranks, our part of the launch's store, and where we are."""

    ranks: Ranks
    store: dist.Store
    device: torch.device = CPU
    where: str = "start-up"


_group: _Group | None = None
_joins = 0
"""Process groups this process has joined; each keeps its keys in the launch's store apart."""


def launched() -> bool:
    """Whether this process was started as one of several (torchrun's WORLD_SIZE above 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def ranks() -> Ranks:
    """This process's ranks: from the joined process group, else rank 0 of 1."""
    return _group.ranks if _group is not None else Ranks()


def is_main() -> bool:
    """Whether this process writes the run's files and prints (rank 0, or a single process)."""
    return ranks().main


@contextmanager
def process_group(timeout_s: float = DEFAULT_TIMEOUT_S, device: torch.device = CPU) -> Iterator[Ranks]:
    """Join the process group of a torchrun launch for the block; yields this process's `Ranks`.

    Outside a launch (or inside an already joined group) nothing is joined. The group trains on `device`:
    gloo on the CPU; on a GPU (made this process's current one) NCCL, bound to it. Every collective gives up
    after `timeout_s` seconds; an error leaving the block is reported to the other ranks, and a lost
    collective becomes a `DistributedError` naming the rank that failed or went silent. Ranks other
    than 0 keep warnings and library logs to themselves (`_quiet`): rank 0 speaks for the job.
    """
    global _group, _joins
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not launched() or _group is not None:
        yield ranks()
        return
    if not timeout_s > 0:
        raise ConfigError(f"the process group timeout must be > 0 seconds (got {timeout_s})")
    timeout = timedelta(seconds=timeout_s)
    launch_store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
    _joins += 1
    store = dist.PrefixStore(f"tsdtp/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{_joins}/", launch_store)
    cuda = device.type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=rank, world_size=world_size,
                            timeout=timeout, device_id=device if cuda else None)
    _group = _Group(Ranks(rank, world_size), store, device)
    try:
        with _quiet() if rank > 0 else nullcontext():
            yield _group.ranks
    except BaseException as exc:
        stopped = _named_failure(_group, exc)
        if stopped is exc:
            raise
        raise stopped from exc
    finally:
        dist.destroy_process_group()
        _group = None


@contextmanager
def _quiet() -> Iterator[None]:
    """Python warnings and transformers' logs and progress bars off for the block (errors still raise)."""
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def mark(where: str) -> None:
    """Record where this rank is (e.g. `step 3`), for the message that names a rank which stops responding."""
    if _group is not None:
        _group.where = where
        _store_set(_group, "at", where)


def _named_failure(group: _Group, exc: BaseException) -> BaseException:
    """What a rank raises when `exc` ends its block: its own error (reported to the others), or a
    `DistributedError` naming the rank that failed, or the ranks that went silent."""
    me, world_size = group.ranks.rank, group.ranks.world_size
    if not _lost_contact(exc):
        described = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
        _store_set(group, "report", json.dumps({"failed": described}))
        return exc
    _store_set(group, "report", json.dumps({"lost": first_line(exc)}))
    reports = _wait_for_reports(group)
    failed = {rank: report["failed"] for rank, report in reports.items() if "failed" in report}
    if failed:
        rank, message = min(failed.items())
        return DistributedError(f"rank {rank} of {world_size} failed at {_where(group, rank)}: {message} "
                                f"(rank {me} stopped with it)")
    silent = [rank for rank in range(world_size) if rank != me and rank not in reports]
    if silent:
        named = ", ".join(f"rank {rank} (last at {_where(group, rank)})" for rank in silent)
        return DistributedError(f"{named} of {world_size} stopped responding: rank {me} lost "
                                f"{'it' if len(silent) == 1 else 'them'} at {group.where} ({first_line(exc)}); a rank "
                                "that hangs, is killed or runs far slower than the others stops the job after the "
                                "process group timeout (--dist-timeout)")
    return DistributedError(f"rank {me} of {world_size} lost the other ranks at {group.where}: {first_line(exc)}")


def _lost_contact(exc: BaseException) -> bool:
    """Whether `exc` is a collective that failed for want of another rank (closed connection, timeout)."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        sign in text for sign in ("gloo", "Connection closed by peer", "Timed out waiting", "NCCL"))


def _wait_for_reports(group: _Group) -> dict[int, dict[str, str]]:
    """The other ranks' reports, waiting up to `REPORT_WAIT_S` for one from each of them."""
    others = [rank for rank in range(group.ranks.world_size) if rank != group.ranks.rank]
    deadline = time.monotonic() + REPORT_WAIT_S
    while True:
        reports = {rank: json.loads(text) for rank in others
                   if (text := _store_get(group, "report", rank)) is not None}
        if len(reports) == len(others) or time.monotonic() > deadline:
            return reports
        time.sleep(0.2)


def _where(group: _Group, rank: int) -> str:
    """Where rank `rank` last said it was (`mark`)."""
    return _store_get(group, "at", rank) or "start-up"


def _store_set(group: _Group, key: str, value: str) -> None:
    """Set this rank's `key` in the launch's store; a store that is gone is ignored (the error says less)."""
    try:
        group.store.set(f"{key}/{group.ranks.rank}", value)
    except (RuntimeError, dist.DistError):
        pass


def _store_get(group: _Group, key: str, rank: int) -> str | None:
    """Rank `rank`'s `key` from the launch's store, or None when it has none (or the store is gone)."""
    name = f"{key}/{rank}"
    try:
        return group.store.get(name).decode() if group.store.check([name]) else None
    except (RuntimeError, dist.DistError):
        return None


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if _group is not None:
        dist.barrier()


def share(items: Sequence[Item]) -> list[Item]:
    """This rank's share of `items`: every world_size-th one from its rank on (all of them in one process)."""
    mine = ranks()
    return list(items[mine.rank::mine.world_size])


def gather_in_order(mine: list[Item]) -> list[Item]:
    """Every rank's results over its `share` of some items, back in the items' order, on every rank."""
    if _group is None:
        return mine
    world_size = _group.ranks.world_size
    shares: list[Any] = [None] * world_size
    dist.all_gather_object(shares, mine)
    return [shares[i % world_size][i // world_size] for i in range(sum(len(s) for s in shares))]


def gather_objects(mine: Any) -> list[Any]:
    """Every rank's `mine`, in rank order ([mine] in one process)."""
    if _group is None:
        return [mine]
    gathered: list[Any] = [None] * _group.ranks.world_size
    dist.all_gather_object(gathered, mine)
    return gathered


def same_on_every_rank(value: Any, what: str) -> None:
    """Raise DistributedError unless every rank holds the same `value` (`what` it is, for the message)."""
    values = gather_objects(value)
    differing = [rank for rank, other in enumerate(values) if other != values[0]]
    if differing:
        raise DistributedError(f"rank {differing[0]} sees {what} = {values[differing[0]]!r}, rank 0 sees "
                               f"{values[0]!r}: every process must see the same run directory (on several nodes, "
                               "put it on a filesystem they share)")


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Each of `values` summed over the ranks (in float64; the values themselves in one process)."""
    if _group is None:
        return list(values)
    total = torch.tensor(list(values), dtype=torch.float64, device=_group.device)
    dist.all_reduce(total)
    return total.tolist()


def gather_rows(tensor: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """The first `rows[r]` rows of rank r's `tensor` for every rank r, in rank order, detached.

    Each rank holds at least one row and at most `max(rows)`; in one process, the first `rows[0]` rows.
    """
    if _group is None:
        return tensor[: rows[0]].detach()
    width = max(1, *rows)
    padding = tensor.new_zeros((width - tensor.shape[0], *tensor.shape[1:]))
    parts = [torch.empty((width, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device) for _ in rows]
    dist.all_gather(parts, torch.cat([tensor.detach(), padding]))
    return torch.cat([part[:count] for part, count in zip(parts, rows)])
