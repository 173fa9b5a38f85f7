"""Translation systems compared at matched encoder FLOPs: stored translations, curves, paired intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sacrebleu.metrics import BLEU, CHRF

from tsdtp.analysis.stored_hypotheses import load_hypotheses, store_hypotheses, stored_hypotheses_path
from tsdtp.analysis.translation_matched import (
    Curve,
    compare_matched,
    matched_difference,
    read_system_rows,
    system_curves,
)
from tsdtp.errors import DataError
from tsdtp.translation.compare import corpus_score, sentence_statistics

REFERENCES = ["ein Hund läuft über die Wiese", "zwei Männer spielen Fußball im Park", "eine Frau liest ein Buch",
              "ein Kind springt ins Wasser", "Leute sitzen vor einem Café"]
GOOD = ["ein Hund läuft über die Wiese", "zwei Männer spielen Fußball im Park", "eine Frau liest ein Buch",
        "ein Kind springt in das Wasser", "Leute sitzen vor dem Café"]
POOR = ["ein Hund rennt", "Männer spielen", "eine Frau liest", "ein Kind", "Leute sitzen"]


def row(method: str, k: float, flops: float, seed: int = 0, run: str = "runs/a", variant: str = "") -> dict:
    return {"task": "wmt16", "method": method, "k": k, "gamma": 0.5 if method == "ts-dtp" else 0.0,
            "eval_split": "multi30k test_2016_flickr (captions)", "flops_ratio": flops, "seed": seed,
            "run_dir": run, "variant": variant}


def test_stored_translations_round_trip_and_a_missing_one_is_named(tmp_path):
    run = tmp_path / "runs" / "wmt16-ts-dtp-abc"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "ts-dtp_k0.5_g0.5.multi30k-test2016.txt").write_text("".join(f"{h}\n" for h in GOOD))
    summary = pd.DataFrame([{**row("ts-dtp", 0.5, 0.6, run=str(run)), "split": "multi30k-test2016"}])
    written = store_hypotheses(summary, tmp_path / "hypotheses")
    assert written == [tmp_path / "hypotheses" / "wmt16-ts-dtp-abc" / "ts-dtp_k0.5_g0.5.multi30k-test2016.txt"]
    assert load_hypotheses(summary.iloc[0], "multi30k-test2016", tmp_path / "hypotheses") == GOOD
    with pytest.raises(DataError, match="no stored hypotheses .*ts-dtp_k0.5_g0.5.newstest2016.txt"):
        load_hypotheses(summary.iloc[0], "newstest2016", tmp_path / "hypotheses")
    with pytest.raises(DataError, match="no hypotheses .*evaluate the run first"):
        store_hypotheses(summary.assign(k=1.0), tmp_path / "hypotheses")


def test_a_curve_reads_its_settings_exactly_interpolates_between_them_and_never_extrapolates():
    metric = BLEU()
    good, poor = (sentence_statistics(metric, lines, REFERENCES) for lines in (GOOD, POOR))
    curve = Curve(np.array([0.5, 0.7]), np.stack([poor, good]))
    assert np.array_equal(curve.at(0.5), poor) and np.array_equal(curve.at(0.7), good)
    assert np.allclose(curve.at(0.6), (poor + good) / 2)
    assert curve.at(0.45) is None and curve.at(0.75) is None
    dense = Curve(np.array([1.0]), good[None], dense=True)
    assert np.array_equal(dense.at(0.6), good)


def test_the_matched_difference_is_the_corpus_score_difference_and_zero_against_itself():
    metric = CHRF()
    good, poor = (sentence_statistics(metric, lines, REFERENCES)[None] for lines in (GOOD, POOR))
    expected = metric.corpus_score(GOOD, [REFERENCES]).score - metric.corpus_score(POOR, [REFERENCES]).score
    interval = matched_difference(metric, good, poor, resamples=200)
    assert interval.difference == pytest.approx(expected) and interval.low <= expected <= interval.high
    assert interval.low > 0
    same = matched_difference(metric, good, good, resamples=50)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(DataError, match="same test sentences"):
        matched_difference(metric, good, poor[:, :3])


def test_systems_are_compared_on_their_curves_at_matched_flops_over_seeds():
    rows = pd.DataFrame([row("ts-dtp", 0.0, 0.5, seed=0, run="runs/t0"), row("ts-dtp", 1.0, 0.7, seed=0, run="runs/t0"),
                         row("ts-dtp", 0.0, 0.5, seed=1, run="runs/t1"), row("ts-dtp", 1.0, 0.7, seed=1, run="runs/t1"),
                         row("none", 1.0, 1.0, run="runs/d")])
    translations = {("runs/t0", 0.0): POOR, ("runs/t0", 1.0): GOOD, ("runs/t1", 0.0): POOR, ("runs/t1", 1.0): POOR,
                    ("runs/d", 1.0): GOOD}
    systems = read_system_rows(rows, {"TS-DTP": ("ts-dtp", ""), "dense": ("none", "")}, rows["eval_split"].iloc[0])
    curves = {name: system_curves(found, lambda r: translations[(r["run_dir"], r["k"])], REFERENCES, BLEU())
              for name, found in systems.items()}
    assert [len(curves["TS-DTP"]), len(curves["dense"])] == [2, 1]
    table = compare_matched(curves, [("TS-DTP", "dense")], [0.5, 0.7, 0.9], resamples=100).set_index("point")
    bleu = BLEU()
    good, poor = (corpus_score(bleu, sentence_statistics(bleu, lines, REFERENCES)) for lines in (GOOD, POOR))
    assert table.loc[0.5, "score"] == pytest.approx(poor) and table.loc[0.5, "other_score"] == pytest.approx(good)
    assert table.loc[0.7, "score"] == pytest.approx((good + poor) / 2) and table.loc[0.7, "seeds"] == 2
    assert table.loc[0.7, "sd"] == pytest.approx(np.std([good, poor], ddof=1))
    assert table.loc[0.7, "difference"] == pytest.approx((good + poor) / 2 - good)
    assert np.isnan(table.loc[0.9, "score"]) and np.isnan(table.loc[0.9, "difference"])
    assert table.loc[0.9, "other_score"] == pytest.approx(good)


def test_a_curve_needs_every_translation_of_the_test_set():
    rows = pd.DataFrame([row("ts-dtp", 0.5, 0.6)])
    with pytest.raises(DataError, match="has 3 translations for 5 references"):
        system_curves(rows, lambda r: GOOD[:3], REFERENCES, BLEU())


def test_system_rows_are_picked_by_method_and_variant_and_an_ambiguous_system_is_refused():
    rows = pd.DataFrame([row("ts-dtp", 0.5, 0.6, variant="exit after 1,2,3,4,5; kd 0.5"),
                         row("ts-dtp", 0.5, 0.6, variant="exit after 1; kd 0.5"), row("none", 1.0, 1.0)])
    label = rows["eval_split"].iloc[0]
    found = read_system_rows(rows, {"gate": ("ts-dtp", "exit after 1; kd 0.5"), "dense": ("none", "")}, label)
    assert found["gate"]["variant"].tolist() == ["exit after 1; kd 0.5"] and len(found["dense"]) == 1
    assert read_system_rows(rows, {"any": ("none", None)}, label)["any"]["method"].tolist() == ["none"]
    with pytest.raises(DataError, match="ts-dtp has 2 variants"):
        read_system_rows(rows, {"any": ("ts-dtp", None)}, label)


def test_the_stored_path_names_the_run_folder_and_the_evaluation():
    path = stored_hypotheses_path(pd.Series(row("general-dtp", 1.0, 0.7, run="runs/wmt16-general-dtp-x")),
                                  "multi30k-test2016", "data/hypotheses")
    assert path.as_posix() == "data/hypotheses/wmt16-general-dtp-x/general-dtp_k1_g0.multi30k-test2016.txt"
