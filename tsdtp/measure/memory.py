"""Peak activation memory of one forward pass, measured on CPU and on CUDA.

On CUDA the caching allocator keeps exact statistics: the peak is
`torch.cuda.max_memory_allocated` after a reset, minus what was allocated before the call.

On CPU there is no allocator statistic, so the forward runs under `torch.profiler` with
`profile_memory=True`. The profiler then records every allocation and free made by the CPU
allocator as a `[memory]` event with its signed size, in order. The running sum of those
sizes is the memory held by tensors created during the call; its maximum is the peak
activation memory. This is a measurement of what the allocator actually handed out
(weights and the inputs, allocated before the call, are not counted), not an estimate from
tensor shapes. Allocations made outside torch's allocator (e.g. oneDNN scratch space) are
not seen.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

MEMORY_EVENT = "[memory]"


def peak_activation_bytes(forward: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated while `forward()` runs, beyond what was allocated before it."""
    if device.type == "cuda":
        return _cuda_peak(forward, device)
    return _cpu_peak(forward)


def _cuda_peak(forward: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    forward()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def _cpu_peak(forward: Callable[[], object]) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        forward()
    return running_peak(memory_deltas(prof))


def memory_deltas(prof: profile) -> list[int]:
    """Signed sizes of the CPU allocations (+) and frees (-) a profiler recorded, in time order."""
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == MEMORY_EVENT and e.device_type() == torch.autograd.DeviceType.CPU]
    return [e.nbytes() for e in sorted(events, key=lambda e: e.start_ns())]


def running_peak(deltas: list[int]) -> int:
    """The largest running total of `deltas` (0 if it never rises above the start)."""
    total, peak = 0, 0
    for delta in deltas:
        total += delta
        peak = max(peak, total)
    return peak
