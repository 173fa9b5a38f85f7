"""Compare two translation systems on the same test set: sacreBLEU's paired bootstrap, and matched-FLOPs reading.

`paired_bootstrap` resamples the test sentences with replacement (Koehn 2004), as sacreBLEU's paired
bootstrap test does: per resample, corpus BLEU and chrF of both systems are computed from the
sentences' sufficient statistics (sacreBLEU's metric objects; the statistics methods are the ones its
own `significance` module uses), giving the 95% percentile interval of the difference A - B. The
p-value is sacreBLEU's own (`sacrebleu.significance.PairedTest`, test type `bs`, same seed and
number of resamples). `value_at` reads a metric off a method's curve at a given FLOPs ratio, for
comparisons at matched encoder FLOPs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from tsdtp.errors import ConfigError, DataError
from tsdtp.runs.eval_files import eval_file
from tsdtp.translation.checkpoint import read_config
from tsdtp.translation.data import data_tag, load_corpus

BOOTSTRAP_SEED = 12345
"""sacreBLEU's default seed (`SACREBLEU_SEED`)."""


def sentence_statistics(metric: BLEU | CHRF, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Each sentence's sufficient statistics of `metric`, `[n, F]`; their sum over sentences gives the corpus score."""
    return np.array(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype="float64")


def corpus_score(metric: BLEU | CHRF, statistics: np.ndarray) -> float:
    """The corpus score of sentence statistics `[n, F]` (`sentence_statistics`, or interpolations of them)."""
    return float(metric._compute_score_from_stats(statistics.sum(0)).score)


def _resampled(metric: BLEU | CHRF, hypotheses: Sequence[str], references: Sequence[str],
               indices: np.ndarray) -> tuple[float, np.ndarray]:
    """The corpus score of `hypotheses` and its value on every resample of sentence `indices` [R, n]."""
    stats = sentence_statistics(metric, hypotheses, references)
    return corpus_score(metric, stats), np.array([corpus_score(metric, stats[row]) for row in indices])


def paired_bootstrap(hypotheses_a: Sequence[str], hypotheses_b: Sequence[str], references: Sequence[str],
                     samples: int = 1000, seed: int = BOOTSTRAP_SEED) -> dict[str, float]:
    """BLEU and chrF of systems A and B, the difference A - B with its 95% paired bootstrap interval, and sacreBLEU's
    paired bootstrap p-value of the BLEU difference. DataError when the three lists differ in length or are empty."""
    if not (len(hypotheses_a) == len(hypotheses_b) == len(references)) or not references:
        raise DataError(f"paired bootstrap needs the same non-empty test set for both systems: got "
                        f"{len(hypotheses_a)} and {len(hypotheses_b)} hypotheses for {len(references)} references")
    if samples < 10:
        raise ConfigError(f"paired bootstrap needs at least 10 resamples (got {samples})")
    indices = np.random.default_rng(seed).choice(len(references), size=(samples, len(references)), replace=True)
    out: dict[str, float] = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        score_a, resampled_a = _resampled(metric, hypotheses_a, references, indices)
        score_b, resampled_b = _resampled(metric, hypotheses_b, references, indices)
        low, high = np.percentile(resampled_a - resampled_b, [2.5, 97.5])
        out.update({f"{name}_a": score_a, f"{name}_b": score_b, f"{name}_diff": score_a - score_b,
                    f"{name}_diff_low": float(low), f"{name}_diff_high": float(high)})
    out["bleu_p_value"] = _sacrebleu_p_value(hypotheses_a, hypotheses_b, references, samples, seed)
    out["samples"] = samples
    return out


def _sacrebleu_p_value(hypotheses_a: Sequence[str], hypotheses_b: Sequence[str], references: Sequence[str],
                       samples: int, seed: int) -> float:
    """sacreBLEU's paired bootstrap p-value of B against A as the baseline."""
    test = PairedTest([("a", list(hypotheses_a)), ("b", list(hypotheses_b))], {"BLEU": BLEU()}, [list(references)],
                      test_type="bs", n_samples=samples)
    test._seed = seed
    _, scores = test()
    return float(scores["BLEU"][1].p_value)


def read_hypotheses(path: str | Path) -> list[str]:
    """The hypotheses an evaluation wrote (`eval/<name>.<split>.txt`, one per line); DataError when missing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no hypotheses at {path}; evaluate the run with `tsdtp mt-eval` first")
    return path.read_text(encoding="utf-8").splitlines()


def hypotheses_file(system: str | Path, split: str, data_dir: str | None = None) -> Path:
    """`system` itself when it is a file, else the hypotheses of its run directory's own trained setting on `split`."""
    system = Path(system)
    if system.is_dir():
        return eval_file(system, read_config(system).pruning, f"{split}.txt", data_tag(data_dir))
    return system


def compare_systems(system_a: str | Path, system_b: str | Path, split: str = "multi30k-test2016",
                    data_dir: str | None = None, samples: int = 1000) -> dict[str, Any]:
    """`paired_bootstrap` of two evaluated systems (hypotheses files, or run directories) on `split`'s references
    (its first n sentences when n hypotheses were written)."""
    paths = [hypotheses_file(system, split, data_dir) for system in (system_a, system_b)]
    hypotheses = [read_hypotheses(path) for path in paths]
    references = load_corpus(split, data_dir).head(len(hypotheses[0])).targets
    return {"a": str(paths[0]), "b": str(paths[1]), "split": split,
            **paired_bootstrap(hypotheses[0], hypotheses[1], references, samples)}


def value_at(curve: pd.DataFrame, flops_ratio: float, column: str = "bleu", x: str = "flops_ratio") -> float:
    """`column` read off one method's curve (rows of results) at `flops_ratio`, linearly between its two nearest
    settings; NaN outside the measured range (no extrapolation)."""
    points = curve.dropna(subset=[x, column]).sort_values(x)
    if points.empty or not points[x].min() <= flops_ratio <= points[x].max():
        return float("nan")
    return float(np.interp(flops_ratio, points[x].to_numpy(float), points[column].to_numpy(float)))


def seeds_summary(differences: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean and sample standard deviation over seeds of the BLEU difference, and the widest interval seen."""
    values = np.array([d["bleu_diff"] for d in differences], dtype=float)
    return {"seeds": len(values), "bleu_diff_mean": float(values.mean()),
            "bleu_diff_sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "bleu_diff_low_min": min(d["bleu_diff_low"] for d in differences),
            "bleu_diff_high_max": max(d["bleu_diff_high"] for d in differences)}
