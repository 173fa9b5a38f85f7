"""The method table (`METHOD_TABLE`) and the validated pruning settings (`PruningConfig`).

Every question about a method (is it trained, does it use the task scorer, its default gamma, ...) is
answered by its `Method` row, not by lists of names. Settings are frozen dataclasses checked on
construction, so a bad value fails before any model is loaded or any step is trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from tsdtp.core.exits import EXIT_MODES, TokenExit
from tsdtp.core.settings import Settings, setting
from tsdtp.errors import ConfigError


@dataclass(frozen=True)
class Method:
    """One pruning method of the harness and what may be done with it (see METHOD.md, "Baselines").

    trained: it has its own fine-tuning recipe; the others are applied to a trained model. A trained method
        without a differentiable form (top-k) fine-tunes the model with its hard rule in the forward pass.
    uses_scorer: its importance adds the task-specific scorer, weighted by gamma.
    default_gamma: the gamma it takes wherever a command, notebook or pipeline does not set one.
    scheduled: it keeps fixed per-layer counts (a keep schedule) instead of thresholding at k.
    differentiable: it has a training (soft-mask) form.
    translatable: it has a translation (encoder-decoder) form.
    prunes: it removes tokens at all (False: the dense `none`).
    masks: it masks tokens over two full passes instead of removing them.
    fixed_gamma: the only gamma it accepts, if any.
    random_scores: it ranks tokens by random scores, so no layer needs an importance.
    """

    name: str
    trained: bool
    uses_scorer: bool
    default_gamma: float
    scheduled: bool
    differentiable: bool
    translatable: bool = True
    prunes: bool = True
    masks: bool = False
    fixed_gamma: float | None = None
    random_scores: bool = False

    @property
    def thresholded(self) -> bool:
        """Whether it decides with the threshold `mean - k * std` (so k matters)."""
        return self.prunes and not self.scheduled

    @property
    def layer_thresholds(self) -> bool:
        """Whether it thresholds after each pruning layer, so per-layer k offsets apply (not a two-pass mask)."""
        return self.thresholded and not self.masks


METHOD_TABLE: dict[str, Method] = {method.name: method for method in (
    Method("none", trained=True, uses_scorer=False, default_gamma=0.0, scheduled=False, differentiable=True,
           prunes=False),
    Method("ts-dtp", trained=True, uses_scorer=True, default_gamma=0.5, scheduled=False, differentiable=True),
    Method("general-dtp", trained=True, uses_scorer=False, default_gamma=0.0, scheduled=False, differentiable=True,
           fixed_gamma=0.0),
    Method("general-dtp-posthoc", trained=False, uses_scorer=False, default_gamma=0.0, scheduled=False,
           differentiable=False),
    Method("topk", trained=True, uses_scorer=False, default_gamma=0.0, scheduled=True, differentiable=False),
    Method("random", trained=False, uses_scorer=False, default_gamma=0.0, scheduled=True, differentiable=False,
           random_scores=True),
    Method("reference-masking", trained=False, uses_scorer=True, default_gamma=0.5, scheduled=False,
           differentiable=False, translatable=False, masks=True),
)}
"""Every pruning method of the harness, in the order tables and figures show them."""

METHODS: tuple[str, ...] = tuple(METHOD_TABLE)
"""The method names, in table order."""

DENSE_METHOD: str = next(name for name, method in METHOD_TABLE.items() if not method.prunes)
"""The method that removes nothing (the dense baseline of every comparison)."""

REMOVALS: tuple[str, ...] = ("drop", "fuse")
"""What may happen to pruned tokens (`PruningConfig.removal`)."""

QUERIES: tuple[str, ...] = ("all", "readout")
"""Whose attention ranks the tokens (`PruningConfig.queries`): every live query's, or the readout token's."""

K_MIN, K_MAX = -3.0, 1e6
"""The threshold width k. k >= K_MAX (or `math.inf`) switches pruning off."""


def method_spec(name: str) -> Method:
    """The table row of method `name`; raises ConfigError naming the known methods otherwise."""
    try:
        return METHOD_TABLE[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}") from None


@dataclass(frozen=True)
class PruningConfig(Settings):
    """How tokens are scored and removed (the help text of each field says what it means)."""

    LABEL: ClassVar[str] = "pruning"

    method: str = setting("none", choices=METHODS, help="pruning method")
    k: float = setting(1.0, low=K_MIN, help="threshold width in tau = mean(S) - k * std(S); smaller prunes more")
    gamma: float = setting(0.5, low=0.0, high=100.0, resolved=True,
                           help="weight of the task-specific attention (default: the method's, 0.5 with the "
                                "scorer, else 0; evaluating a run under its own method keeps its gamma)")
    d_task: int = setting(128, low=1, high=4096, help="width of the task-specific scorer")
    prune_layers: tuple[int, ...] | None = setting(
        None, low=0, help="comma-separated 0-based layers after which tokens are removed (default: every layer "
                          "after the first except the last)")
    temperature: float = setting(0.25, low=0.0, high=100.0, low_open=True,
                                 help="soft-mask temperature, in units of the per-example std of S")
    lambda_aux: float = setting(0.1, low=0.0, high=100.0, help="weight of the auxiliary loss")
    lambda_keep: float = setting(2.0, low=0.0, high=100.0, help="weight of the keep-budget loss")
    keep_target: float = setting(0.5, low=0.0, high=1.0, low_open=True,
                                 help="fraction of token-layers the keep-budget loss pulls toward")
    task_features: str = setting("hidden", choices=("hidden", "embeddings"),
                                 help="what the task scorer reads: the layer's hidden states or the embeddings")
    topk_final_keep: float = setting(0.3, low=0.0, high=1.0, low_open=True,
                                     help="keep ratio at the last pruning layer of the linear top-k schedule")
    keep_schedule: tuple[float, ...] | None = setting(
        None, low=0.0, high=1.0, low_open=True, help="comma-separated keep fractions per pruning layer (topk, random)")
    seed: int = setting(0, flag=False, help="seed of the random baseline")
    removal: str = setting("drop", choices=REMOVALS, omit_default=True,
                           help="what happens to pruned tokens: dropped, or fused into one kept token per example, "
                                "their importance-weighted mean (EViT)")
    keep_ramp: float = setting(0.0, low=0.0, high=1.0, omit_default=True,
                               help="first fraction of training over which the keep-budget target falls linearly "
                                    "from 1 to keep_target")
    k_offsets: tuple[float, ...] | None = setting(
        None, low=-10.0, high=10.0, omit_default=True,
        help="comma-separated offsets added to k at each pruning layer (thresholded methods): layer l thresholds "
             "at mean - (k + offset_l) * std, e.g. 0.5,0.25,0,-0.25 prunes deeper layers harder")
    exit_mode: str = setting("delete", choices=EXIT_MODES, omit_default=True,
                             help="what becomes of a pruned token: deleted, kept at its last state in the output "
                                  "(exit), or merged into its most similar kept token (merge); see core/exits.py")
    queries: str = setting("all", choices=QUERIES, omit_default=True,
                           help="whose attention ranks the tokens: every live query's (the paper), or only the "
                                "token the head reads, [CLS] of an encoder (EViT) or a decoder's last token "
                                "(LazyLLM); the task scorer's queries follow")

    def check(self) -> None:
        """A method with a fixed gamma (general-dtp: 0) gets no other; prune layers are distinct."""
        fixed = self.spec.fixed_gamma
        if fixed is not None and self.gamma != fixed:
            raise ConfigError(f"{self.method} is task-agnostic: gamma must be {fixed:g} (use ts-dtp for gamma > 0)")
        if self.prune_layers is not None and len(set(self.prune_layers)) != len(self.prune_layers):
            raise ConfigError(f"prune_layers must be distinct non-negative layer indices (got {self.prune_layers})")
        if self.fuses and self.spec.masks:
            raise ConfigError(f"{self.method} masks tokens instead of removing them: it has no removal 'fuse'")
        if self.fuses and self.task_features != "hidden":
            raise ConfigError("removal 'fuse' needs task_features 'hidden' (a fused token has no embedding)")
        if self.k_offsets is not None and not self.spec.layer_thresholds:
            raise ConfigError(f"k_offsets set a per-layer threshold; {self.method} has none (it keeps a schedule, "
                              "decides once, or prunes nothing)")
        if self.fuses and self.exit_mode != TokenExit.DELETE:
            raise ConfigError(f"removal 'fuse' already decides what becomes of pruned tokens: it needs exit_mode "
                              f"'delete' (got {self.exit_mode!r})")
        if self.reads_out and self.fuses:
            raise ConfigError("queries 'readout' ranks by the token the head reads; removal 'fuse' adds a token "
                              "after it, so the two do not combine")

    @property
    def spec(self) -> Method:
        """The method table row of this setting's method."""
        return METHOD_TABLE[self.method]

    @property
    def prunes(self) -> bool:
        """Whether this configuration removes any token at all."""
        return self.spec.prunes and self.k < K_MAX

    @property
    def fuses(self) -> bool:
        """Whether pruned tokens are fused into one kept token per example instead of dropped."""
        return self.removal == "fuse"

    @property
    def reads_out(self) -> bool:
        """Whether only the readout token's attention ranks the tokens (`queries` 'readout')."""
        return self.queries == "readout"

    @property
    def uses_scorer(self) -> bool:
        """Whether the task-specific scorer contributes to the importance."""
        return self.spec.uses_scorer and self.gamma > 0

    @property
    def effective_gamma(self) -> float:
        """The gamma that acts: `gamma` where the scorer contributes, else 0 (what names and result rows show)."""
        return self.gamma if self.uses_scorer else 0.0

    def k_at(self, step: int) -> float:
        """The threshold width at pruning step `step` (the `step`-th pruning layer): k plus its offset, if any."""
        return self.k + (self.k_offsets[step] if self.k_offsets is not None else 0.0)

    def check_trainable(self) -> None:
        """Raise ConfigError unless the method has its own fine-tuning recipe."""
        if not self.spec.trained:
            trained = ", ".join(name for name, method in METHOD_TABLE.items() if method.trained)
            raise ConfigError(f"method {self.method!r} is applied to a trained model, not trained; "
                              f"train one of {trained} and evaluate with --method {self.method}")

    def resolved_prune_layers(self, num_layers: int) -> tuple[int, ...]:
        """The 0-based layers after which tokens are removed, checked against the model depth."""
        if self.prune_layers is None:
            return tuple(range(1, num_layers - 1))
        bad = [layer for layer in self.prune_layers if layer >= num_layers]
        if bad:
            raise ConfigError(f"prune_layers {bad} out of range for a {num_layers}-layer model; "
                              f"expected layers 0..{num_layers - 1}")
        return tuple(sorted(self.prune_layers))

    def check_depth(self, num_layers: int) -> None:
        """Raise ConfigError unless the prune layers exist in a `num_layers`-layer model and a keep schedule or
        k offsets, when given, have one entry per pruning layer."""
        layers = self.resolved_prune_layers(num_layers)
        if self.keep_schedule is not None and len(self.keep_schedule) != len(layers):
            raise ConfigError(f"keep_schedule has {len(self.keep_schedule)} fraction(s) for {len(layers)} pruning "
                              f"layer(s) {list(layers)} of a {num_layers}-layer model; give one per pruning layer")
        if self.k_offsets is not None and len(self.k_offsets) != len(layers):
            raise ConfigError(f"k_offsets has {len(self.k_offsets)} offset(s) for {len(layers)} pruning layer(s) "
                              f"{list(layers)} of a {num_layers}-layer model; give one per pruning layer")

    def with_overrides(self, overrides: Mapping[str, Any]) -> PruningConfig:
        """This setting changed by `overrides` (a command's or an evaluation's pruning settings), validated.

        The gamma rule: an override without gamma keeps this setting's gamma when the method stays the
        same, or when both methods use the scorer (the trained gamma carries over, e.g. ts-dtp to
        reference-masking); otherwise the new method's default gamma applies. k offsets are dropped for a
        method without per-layer thresholds (top-k, random, reference-masking, none). Whole numbers given for
        float settings (`k: 0` in YAML) become floats, lists become tuples.
        """
        defaults = {item.name: item.default for item in dataclasses.fields(self)}
        unknown = set(overrides) - set(defaults)
        if unknown:
            raise ConfigError(f"unknown pruning setting(s) {sorted(unknown)} in evaluation {dict(overrides)}")
        changes = {key: float(value) if isinstance(defaults[key], float) and isinstance(value, int)
                   else tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}
        method = method_spec(changes.get("method", self.method))
        if "gamma" not in changes and method.name != self.method and not (method.uses_scorer
                                                                          and self.spec.uses_scorer):
            changes["gamma"] = method.default_gamma
        if "k_offsets" not in changes and not method.layer_thresholds:
            changes["k_offsets"] = None
        return self.replace(**changes)
