"""Named profiler regions of a forward pass: the components of the time breakdown.

The engine and the adapters wrap each part of a layer in `region(component, layer)`. While a
profiler runs, that opens a `torch.profiler.record_function` range named
`tsdtp: <component> (layer <i>)`, which `tsdtp.measure.profile` reads back. With no
profiler it costs one C call and a shared null context (about 0.3 us): `record_function`
itself costs several microseconds even then, which at ~50 regions per forward would show
at batch size 1.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext

import torch
from torch.profiler import record_function

EMBEDDINGS = "embeddings"
QKV = "qkv projection"
ATTENTION = "attention core"
ATTENTION_OUTPUT = "attention output projection"
FFN = "ffn"
LAYERNORM = "layernorm"
SCORER = "scorer"
KEEP = "keep decision + gather"
PACKING = "packing"
HEAD = "classifier head"
OTHER = "other"

COMPONENTS: tuple[str, ...] = (EMBEDDINGS, QKV, ATTENTION, ATTENTION_OUTPUT, FFN, LAYERNORM, SCORER, KEEP, PACKING,
                               HEAD, OTHER)
"""Every component of the breakdown, in reporting order.

qkv projection: the query, key and value linears. attention core: scores, softmax and
context (or the fused SDPA kernel), with the head reshapes. attention output projection:
the output linear and residual. ffn: intermediate linear, activation, output linear and
residual. layernorm: every `aten::layer_norm` (the embeddings' one too), wherever it runs.
scorer: importance scoring, i.e. attention received and the task scorer (TS-DTP's task
attention). keep decision + gather: thresholds, top-k and moving the survivors to the
front. packing: packing the live tokens and re-padding them for attention. classifier head:
pooler and classifier. other: whatever no region covers (masks, bookkeeping, Python).
"""

_NULL = nullcontext()
_PREFIX = "tsdtp: "
_NAME = re.compile(r"^tsdtp: (?P<component>.+?)(?: \(layer (?P<layer>\d+)\))?$")


def region_name(component: str, layer: int | None = None) -> str:
    """The record_function name of a component, `tsdtp: ffn (layer 3)` or `tsdtp: embeddings`."""
    return f"{_PREFIX}{component}" if layer is None else f"{_PREFIX}{component} (layer {layer})"


def parse_region(name: str) -> tuple[str, int | None] | None:
    """`(component, layer)` of a region name, or None when `name` is not one of ours."""
    match = _NAME.match(name) if name.startswith(_PREFIX) else None
    if match is None or match["component"] not in COMPONENTS:
        return None
    return match["component"], int(match["layer"]) if match["layer"] is not None else None


def region(component: str, layer: int | None = None) -> AbstractContextManager[object]:
    """A profiler range for `component` (of `layer`) while a profiler runs, else a no-op."""
    if not torch.autograd._profiler_enabled():
        return _NULL
    return record_function(region_name(component, layer))
