"""`PrefillPruning`: which layers prune the prompt during prefill, how much survives, and how tokens are ranked.

The schedule is LazyLLM's progressive one: after each layer of `prune_layers` the prompt keeps the fraction
`keep_ratios[i]` of its tokens (of the whole prompt, so the ratios never rise), ranked by the attention the last
`last_queries` prompt tokens pay them. `gamma > 0` adds the task-specific scorer of TS-DTP (METHOD.md, step 3).
The last `keep_last` prompt tokens (the last one at least) and the protected (special) tokens always survive, on
top of the ratio when they must.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tsdtp.core.settings import Settings, setting
from tsdtp.errors import ConfigError

DEFAULT_SCHEDULE = ((6, 14), (0.5, 0.25))
"""The explicit schedule measured best for SmolLM2-135M at about 2.3x fewer prefill FLOPs (docs/llm-prefill.md)."""
DEFAULT_RANKING = {"last_queries": 16, "keep_last": 16, "pool": 7}
"""How tokens are ranked by default: the last 16 prompt tokens rank the others and survive, scores max-pooled over
7 neighbours (SnapKV's observation window and pooling)."""


@dataclass(frozen=True)
class PrefillPruning(Settings):
    """A validated prefill pruning schedule; an empty `prune_layers` is the dense prefill."""

    LABEL = "prefill pruning"

    prune_layers: tuple[int, ...] = setting((), help="0-based layers after which prompt tokens are pruned", low=0)
    keep_ratios: tuple[float, ...] = setting((), help="fraction of the prompt alive after each pruning layer",
                                             low=0.0, high=1.0, low_open=True)
    last_queries: int = setting(1, help="prompt tokens at the end whose attention ranks the others", low=1)
    keep_last: int = setting(1, help="prompt tokens at the end never pruned (the last one always)", low=1)
    pool: int = setting(1, help="odd width of the max-pooling over neighbouring tokens' scores (1: none)", low=1)
    gamma: float = setting(0.0, help="weight of the task-specific scorer (0: training-free, LazyLLM)", low=0.0)
    d_task: int = setting(128, help="width of the task-specific scorer's projections", low=1)

    def check(self) -> None:
        """Layers strictly increasing, one ratio per layer, ratios never rising, an odd pooling width."""
        if len(self.prune_layers) != len(self.keep_ratios):
            raise ConfigError(f"prune_layers and keep_ratios must have the same length (got {len(self.prune_layers)} "
                              f"layers and {len(self.keep_ratios)} ratios)")
        if any(b <= a for a, b in zip(self.prune_layers, self.prune_layers[1:])):
            raise ConfigError(f"prune_layers must be strictly increasing (got {self.prune_layers})")
        if self.pool % 2 == 0:
            raise ConfigError(f"pool must be odd, so that a token's window is centred on it (got {self.pool})")
        if any(b > a for a, b in zip(self.keep_ratios, self.keep_ratios[1:])):
            raise ConfigError("keep_ratios must never rise: a pruned token does not come back "
                              f"(got {self.keep_ratios})")

    @property
    def prunes(self) -> bool:
        """Whether any layer removes tokens."""
        return any(ratio < 1.0 for ratio in self.keep_ratios)

    def check_depth(self, num_layers: int) -> None:
        """Raise ConfigError when a pruning layer does not exist in a model of `num_layers` layers."""
        if self.prune_layers and self.prune_layers[-1] >= num_layers:
            raise ConfigError(f"prune layer {self.prune_layers[-1]} does not exist: the model has {num_layers} "
                              f"layers (0-based 0..{num_layers - 1})")

    def keep_count(self, layer: int, prompt_length: int) -> int | None:
        """Tokens of a `prompt_length`-token prompt alive after `layer`, or None when `layer` does not prune."""
        if layer not in self.prune_layers:
            return None
        return max(1, math.ceil(self.keep_ratios[self.prune_layers.index(layer)] * prompt_length))

    def title(self) -> str:
        """A short label for tables: `dense`, or the layers and ratios, e.g. `L4:0.707,L10:0.5 q1`."""
        if not self.prunes:
            return "dense"
        steps = ",".join(f"L{layer}:{ratio:.3g}" for layer, ratio in zip(self.prune_layers, self.keep_ratios))
        window = f" w{self.keep_last}" if self.keep_last > 1 else ""
        pool = f" p{self.pool}" if self.pool > 1 else ""
        return f"{steps} q{self.last_queries}{window}{pool}" + (f" g{self.gamma:g}" if self.gamma else "")


def progressive_schedule(num_layers: int, final_keep: float, steps: int = 4, first: float = 0.15,
                         **options: float) -> PrefillPruning:
    """`steps` pruning layers evenly from `first` of the depth to the last quarter (never the last layer, where
    pruning saves nothing), the ratio falling geometrically to `final_keep` (e.g. 30 layers, 0.25, 4 steps: after
    layers 4, 10, 16, 22 keep 0.71, 0.5, 0.35, 0.25). `options` are further `PrefillPruning` fields."""
    if not 0.0 < final_keep <= 1.0 or steps < 1:
        raise ConfigError(f"final_keep must be in (0, 1] and steps >= 1 (got {final_keep}, {steps})")
    start, stop = round(first * num_layers), max(0, min(round(0.75 * num_layers), num_layers - 2))
    layers = sorted({min(num_layers - 1, start + round(i * (stop - start) / max(1, steps - 1)))
                     for i in range(steps)})
    ratios = tuple(final_keep ** ((i + 1) / len(layers)) for i in range(len(layers)))
    return PrefillPruning(prune_layers=tuple(layers), keep_ratios=ratios, **options)  # type: ignore[arg-type]


def settings_to_compare(num_layers: int, final_keeps: tuple[float, ...], steps_prune: int = 4,
                        schedules: list[tuple[tuple[int, ...], tuple[float, ...]]] | None = None,
                        **ranking: int) -> dict[str, PrefillPruning]:
    """Dense first, then one `progressive_schedule` per final keep, then each explicit (layers, ratios) schedule
    (default `DEFAULT_SCHEDULE`), keyed by their titles; `ranking` holds last_queries, keep_last and pool."""
    explicit = schedules if schedules is not None else [DEFAULT_SCHEDULE]
    pruned = [progressive_schedule(num_layers, keep, steps_prune, **ranking) for keep in final_keeps]
    pruned += [PrefillPruning(prune_layers=layers, keep_ratios=ratios, **ranking) for layers, ratios in explicit]
    return {"dense": PrefillPruning()} | {schedule.title(): schedule for schedule in pruned}
