"""`Prediction`: what a classifier made of one input under one pruning setting (see `tsdtp.load_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tsdtp.core.config import PruningConfig


def pruning_title(pruning: PruningConfig) -> str:
    """A short readable name of a pruning setting: the method, then k and gamma where they act."""
    parts = [pruning.method]
    if pruning.spec.thresholded:
        parts.append(f"k = {pruning.k:g}")
    if pruning.uses_scorer:
        parts.append(f"γ = {pruning.gamma:g}")
    return " · ".join(parts)


@dataclass(frozen=True)
class Prediction:
    """One input (a text, or a text and its pair) through a pruned classifier.

    texts: the input as given. tokens: its tokens after truncation, special tokens included, and
    special[j] marks those. keep[l][j] is True where token j is alive at the input of layer l (for
    reference-masking: not masked); tokens_per_layer[l] is how many tokens layer l processed.
    probs[c] is the softmax probability of class label_names[c]. input_tokens counts the tokens before
    truncation: more than len(tokens) when the input was cut to the model's limit (`truncated`).
    notes: what was noticed on the way, such as a truncation.
    """

    texts: tuple[str, ...]
    pruning: PruningConfig
    tokens: tuple[str, ...]
    special: tuple[bool, ...]
    keep: tuple[tuple[bool, ...], ...]
    tokens_per_layer: tuple[int, ...]
    label_names: tuple[str, ...]
    probs: tuple[float, ...]
    flops_ratio: float
    input_tokens: int
    notes: tuple[str, ...]

    @property
    def num_layers(self) -> int:
        """Depth of the encoder."""
        return len(self.keep)

    @property
    def prediction(self) -> int:
        """Index of the predicted class."""
        return max(range(len(self.probs)), key=self.probs.__getitem__)

    @property
    def label(self) -> str:
        """Name of the predicted class."""
        return self.label_names[self.prediction]

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return self.probs[self.prediction]

    @property
    def probabilities(self) -> dict[str, float]:
        """Every class's probability, by class name."""
        return dict(zip(self.label_names, self.probs, strict=True))

    @property
    def truncated(self) -> bool:
        """Whether the input was longer than the model's limit and cut to it."""
        return self.input_tokens > len(self.tokens)

    @property
    def kept_tokens(self) -> tuple[tuple[str, ...], ...]:
        """The tokens alive at the input of each layer, in order."""
        return tuple(tuple(token for token, alive in zip(self.tokens, row, strict=True) if alive)
                     for row in self.keep)

    @property
    def keep_counts(self) -> tuple[int, ...]:
        """How many tokens are alive at the input of each layer."""
        return tuple(sum(row) for row in self.keep)

    @property
    def kept_cells(self) -> int:
        """Token-layers marked kept in the grid."""
        return sum(self.keep_counts)

    @property
    def keep_ratio(self) -> float:
        """Token-layers processed over those of the dense pass (as `EvalResult.keep_ratio`)."""
        return sum(self.tokens_per_layer) / (len(self.tokens) * self.num_layers)

    @property
    def final_tokens(self) -> int:
        """Tokens alive at the input of the last layer."""
        return sum(self.keep[-1])

    @property
    def flops_saved(self) -> float:
        """Fraction of the dense FLOPs saved (negative when the method costs more)."""
        return 1.0 - self.flops_ratio

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (finite numbers only): input, label, probabilities and the tokens kept per layer."""
        return {
            "text": self.texts[0],
            "pair": self.texts[1] if len(self.texts) > 1 else None,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {name: round(p, 6) for name, p in self.probabilities.items()},
            "tokens": list(self.tokens),
            "input_tokens": self.input_tokens,
            "truncated": self.truncated,
            "layers": [{"layer": layer + 1, "kept": len(kept), "tokens": list(kept)}
                       for layer, kept in enumerate(self.kept_tokens)],
            "keep_ratio": round(self.keep_ratio, 6),
            "flops_ratio": round(self.flops_ratio, 6),
            "notes": list(self.notes),
        }
