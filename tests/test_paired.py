"""The comparison statistics on synthetic data: bootstrap intervals, interpolation along a curve, seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsdtp.analysis.choose import choose_settings, chosen_curves, pareto_front
from tsdtp.analysis.comparison import compare_at
from tsdtp.analysis.frames import row_stem
from tsdtp.analysis.seed_plots import difference_plot, seed_tradeoff_plot
from tsdtp.analysis.stored_traces import stored_trace_path
from tsdtp.core.config import PruningConfig
from tsdtp.runs.eval_files import eval_name, schedule_label, training_variant
from tsdtp.runs.results import build_result_row, read_results, upsert_results
from tsdtp.stats.paired import interpolate, interpolate_correct, mean_sd, paired_bootstrap, seed_summary


def correlated_methods(rng: np.random.Generator, examples: int, accuracy: float, gain: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Two methods on the same examples: the second agrees with the first except on a few examples, and is
    right `gain` (a fraction) more often in expectation."""
    first = rng.random(examples) < accuracy
    second = first.copy()
    flips = rng.random(examples)
    second[~first & (flips < 2 * gain / (1 - accuracy))] = True
    second[first & (flips < gain / accuracy)] = False
    return first.astype(float), second.astype(float)


def test_the_paired_interval_covers_the_known_difference_about_as_often_as_it_says():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(100):
        first, second = correlated_methods(rng, 800, 0.85, 0.02)
        interval = paired_bootstrap(second, first, resamples=1000, seed=trial)
        covered += interval.low <= 2.0 <= interval.high
        assert interval.difference == pytest.approx(100 * (second.mean() - first.mean()))
    assert 88 <= covered <= 100


def test_pairing_narrows_the_interval_of_two_similar_methods():
    rng = np.random.default_rng(1)
    first, second = correlated_methods(rng, 872, 0.9, 0.01)
    paired = paired_bootstrap(second, first, resamples=2000)
    unpaired = paired_bootstrap(second, rng.permutation(first), resamples=2000)
    assert paired.high - paired.low < 0.6 * (unpaired.high - unpaired.low)


def test_seeds_widen_the_interval_by_their_spread():
    rng = np.random.default_rng(2)
    base = (rng.random(500) < 0.8).astype(float)
    same = np.stack([base] * 3)
    spread = np.stack([base, np.roll(base, 1), (rng.random(500) < 0.7).astype(float)])
    narrow, wide = paired_bootstrap(same, same, resamples=2000), paired_bootstrap(spread, same, resamples=2000)
    assert narrow.low == narrow.high == 0.0 and not narrow.excludes_zero()
    assert wide.high - wide.low > 1.0


def test_examples_must_be_the_same_for_both_methods():
    with pytest.raises(ValueError, match="the same examples: got 3 and 4"):
        paired_bootstrap(np.ones(3), np.ones(4))


def test_correctness_is_interpolated_linearly_between_the_settings_around_a_point():
    correct = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    at = interpolate_correct([0.7, 0.4, 0.55], correct, 0.625)
    assert at is not None and at.tolist() == [1.0, 1.0, 0.5, 0.0]
    assert interpolate_correct([0.7, 0.4, 0.55], correct, 0.55).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert interpolate_correct([0.7, 0.4], correct[:2], 0.3) is None
    assert interpolate([0.4, 0.6], [80.0, 90.0], 0.45) == pytest.approx(82.5)
    assert np.isnan(interpolate([0.4, 0.6], [80.0, 90.0], 0.7))


def test_mean_and_sd_over_seeds():
    assert mean_sd([88.0, 90.0, 89.0]) == (89.0, 1.0, 3)
    mean, sd, count = mean_sd([90.0, float("nan")])
    assert (mean, count) == (90.0, 1) and np.isnan(sd)
    results = pd.DataFrame({"method": ["a", "a", "a", "b"], "k": [0.5] * 4, "seed": [0, 1, 2, 0],
                            "metric": [88.0, 90.0, 89.0, 85.0], "keep_ratio": [0.5, 0.6, 0.7, 0.4],
                            "flops_ratio": [0.5] * 4, "speedup": [1.5] * 4})
    summary = seed_summary(results, ["method", "k"]).set_index("method")
    assert summary.loc["a", "metric_mean"] == 89.0 and summary.loc["a", "metric_sd"] == 1.0
    assert summary.loc["a", "keep_ratio_mean"] == pytest.approx(0.6) and summary.loc["a", "seeds"] == 3
    assert summary.loc["b", "seeds"] == 1 and np.isnan(summary.loc["b", "metric_sd"])


def results_rows(split: str, rows: list[tuple[str, float, float, int, float, float]]) -> pd.DataFrame:
    """Results rows (method, keep target, k, seed, accuracy, keep ratio) on `split`."""
    frame = pd.DataFrame(rows, columns=["method", "keep_target", "k", "seed", "metric", "keep_ratio"])
    runs = [f"runs/sst2-{method}-t{target}-s{seed}" for method, target, seed in
            zip(frame["method"], frame["keep_target"], frame["seed"])]
    return frame.assign(task="sst2", model="m", gamma=0.0, eval_split=split, flops_ratio=frame["keep_ratio"],
                        speedup=1.0, run_dir=runs)


def test_settings_are_chosen_on_the_selection_split_and_read_on_the_evaluation_split():
    selection = results_rows("sst2 train selection 2%", [
        ("ts-dtp", 0.5, 0.5, 0, 88.0, 0.55), ("ts-dtp", 0.5, 0.5, 1, 90.0, 0.57),   # mean 89.0 at 0.56
        ("ts-dtp", 0.4, 0.5, 0, 87.0, 0.45), ("ts-dtp", 0.4, 0.5, 1, 87.0, 0.47),   # mean 87.0 at 0.46
        ("ts-dtp", 0.6, 0.5, 0, 95.0, 0.65)])                                       # best, but over 0.6
    evaluation = results_rows("sst2 dev", [
        ("ts-dtp", 0.5, 0.5, 0, 70.0, 0.5), ("ts-dtp", 0.5, 0.5, 1, 71.0, 0.5),
        ("ts-dtp", 0.4, 0.5, 0, 99.0, 0.4), ("ts-dtp", 0.6, 0.5, 0, 99.0, 0.6)])
    chosen = choose_settings(pd.concat([selection, evaluation]), budgets=[0.6, 0.5])
    at_06 = chosen[chosen["budget"] == 0.6]
    assert sorted(at_06["metric"]) == [70.0, 71.0] and set(at_06["keep_target"]) == {0.5}
    assert at_06["selection_metric"].iloc[0] == pytest.approx(89.0)
    assert chosen[chosen["budget"] == 0.5]["keep_target"].tolist() == [0.4]
    assert choose_settings(evaluation, budgets=[0.6]).empty


def test_the_pareto_front_keeps_the_points_nothing_beats():
    xs, ys = [0.5, 0.6, 0.7, 0.55, 0.8], [85.0, 88.0, 87.0, 84.0, 90.0]
    assert pareto_front(xs, ys).tolist() == [0, 1, 4]
    assert pareto_front([1.5, 2.0, 1.8], [88.0, 85.0, 86.0], higher_x_is_better=True).tolist() == [1, 2, 0]


def test_an_older_results_file_is_read_with_seeds_from_the_runs_that_still_exist(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "sst2", "seed": 3}))
    old = pd.DataFrame([{"task": "sst2", "model": "m", "method": method, "k": 1.0, "gamma": 0.0,
                         "metric_name": "accuracy", "metric": metric, "keep_ratio": 1.0, "flops_ratio": 1.0,
                         "speedup": 1.0, "batch_size": 32, "device": "cpu x2", "n_eval": 8, "eval_split": "sst2 dev",
                         "keep_target": None, "run_dir": str(run_dir), "command": ""}
                        for method, metric, run_dir in (("none", 90.0, run), ("topk", 80.0, tmp_path / "gone"))])
    path = tmp_path / "results.csv"
    old.to_csv(path, index=False)
    table = read_results(path).set_index("method")
    assert table.loc["none", "seed"] == 3 and pd.isna(table.loc["topk", "seed"])
    new = {**old.iloc[0].to_dict(), "metric": 91.0, "seed": 3}
    written = upsert_results(path, [new]).set_index("method")
    assert written.loc["none", "metric"] == 91.0 and len(written) == 2
    assert {"seed", "removal", "schedule"} <= set(written.columns)


def test_result_rows_name_fused_tokens_and_non_default_schedules():
    def row(pruning: PruningConfig) -> dict:
        return build_result_row(task="sst2", model="m", pruning=pruning, metric_name="accuracy", metric=90.0,
                                keep_ratio=0.5, flops_ratio=0.5, speedup=1.0, batch_size=32, threads=2, n_eval=8,
                                eval_split="sst2 dev", scorer_overhead=0.0, run_dir="r", seed=1)

    assert (row(PruningConfig(method="topk", gamma=0.0))["schedule"], row(PruningConfig())["removal"]) == (None, None)
    topk = row(PruningConfig(method="topk", gamma=0.0, keep_schedule=(0.8, 0.5), removal="fuse"))
    assert (topk["schedule"], topk["removal"], topk["keep_target"], topk["seed"]) == ("0.8/0.5", "fuse", None, 1)
    assert row(PruningConfig(method="ts-dtp", keep_target=0.4))["keep_target"] == 0.4


def stored_rows(traces_dir, method: str, seed: int, points: list[tuple[float, list[int]]]) -> list[dict]:
    """Results rows of `method` (one per keep ratio), each with a stored trace whose examples are `correct`."""
    rows = []
    for keep, correct in points:
        row = {"task": "sst2", "model": "m", "method": method, "k": keep, "gamma": 0.0, "keep_target": 0.5,
               "seed": seed, "eval_split": "sst2 dev", "metric": 100 * float(np.mean(correct)), "keep_ratio": keep,
               "flops_ratio": keep, "speedup": 1 / keep, "run_dir": f"runs/sst2-{method}-{seed}", "removal": None,
               "schedule": None}
        table = pd.DataFrame({"example": range(len(correct)), "position": 0, "token": "[CLS]",
                              "correct": [bool(c) for c in correct], "kept_0": True})
        path = stored_trace_path(pd.Series(row), traces_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path)
        rows.append(row)
    return rows


def test_methods_are_compared_at_a_matched_keep_ratio_on_the_same_examples(tmp_path):
    rows = pd.DataFrame([
        *stored_rows(tmp_path, "ts-dtp", 0, [(0.4, [1, 0, 0, 0]), (0.8, [1, 1, 1, 0])]),
        *stored_rows(tmp_path, "ts-dtp", 1, [(0.5, [1, 1, 0, 0]), (0.7, [1, 1, 1, 1])]),
        *stored_rows(tmp_path, "general-dtp", 0, [(0.5, [0, 0, 0, 0]), (0.7, [1, 1, 0, 0])]),
        *stored_rows(tmp_path, "none", 0, [(1.0, [1, 1, 1, 1])])])
    table = compare_at(rows, tmp_path, [("ts-dtp", "general-dtp"), ("ts-dtp", "none")], [0.6, 0.75])
    at = table.set_index(["point", "other"])
    # seed 0 at 0.6: halfway from [1,0,0,0] to [1,1,1,0] = 50%; seed 1: halfway to all-correct = 75%
    assert at.loc[(0.6, "general-dtp"), "accuracy"] == pytest.approx(62.5)
    assert at.loc[(0.6, "general-dtp"), "sd"] == pytest.approx(np.std([50.0, 75.0], ddof=1))
    assert at.loc[(0.6, "general-dtp"), "other_accuracy"] == pytest.approx(25.0)
    assert at.loc[(0.6, "general-dtp"), "difference"] == pytest.approx(37.5)
    assert at.loc[(0.6, "none"), "other_accuracy"] == 100.0  # the dense point matches any keep ratio
    assert np.isnan(at.loc[(0.75, "general-dtp"), "difference"])  # seed 1 and general-dtp stop at 0.7


def test_the_seed_figures_draw_error_bars_and_a_panel_per_task(tmp_path):
    rows = pd.DataFrame([row for seed in (0, 1) for row in stored_rows(tmp_path, "ts-dtp", seed, [(0.5, [1, 0]),
                                                                                                (0.7, [1, 1])])]
                        + stored_rows(tmp_path, "none", 0, [(1.0, [1, 1])]))
    summary = seed_summary(rows, ["task", "method", "k"])
    figure = seed_tradeoff_plot(summary)
    assert len(figure.axes) == 2 and figure.axes[0].get_lines()
    comparison = compare_at(rows, tmp_path, [("ts-dtp", "none")], [0.6])
    assert len(difference_plot(comparison).axes) == 1


def test_a_chosen_setting_brings_its_whole_k_curve_and_nothing_else():
    selection = results_rows("sst2 train selection 2%", [
        ("ts-dtp", 0.6, 0.5, 0, 90.0, 0.58), ("ts-dtp", 0.6, 1.0, 0, 91.0, 0.8),
        ("ts-dtp", 0.4, 0.5, 0, 80.0, 0.45)])
    evaluation = results_rows("sst2 dev", [
        ("ts-dtp", 0.6, 0.0, 0, 80.0, 0.5), ("ts-dtp", 0.6, 0.5, 0, 85.0, 0.6), ("ts-dtp", 0.6, 1.0, 0, 86.0, 0.8),
        ("ts-dtp", 0.4, 0.5, 0, 99.0, 0.4)])
    curves = chosen_curves(pd.concat([selection, evaluation]), budgets=[0.6])
    assert sorted(curves["k"]) == [0.0, 0.5, 1.0] and set(curves["keep_target"]) == {0.6}
    assert chosen_curves(evaluation, budgets=[0.6]).empty


def test_a_thresholded_run_read_at_several_k_offsets_keeps_one_curve_the_one_chosen_at_the_tightest_budget():
    tilted = schedule_label(PruningConfig(method="ts-dtp", k_offsets=(0.5, 0.25, 0.0, -0.25)))
    assert tilted == "dk 0.5/0.25/0/-0.25"
    selection = results_rows("sst2 train selection 2%", [
        ("ts-dtp", 0.6, 0.5, 0, 90.0, 0.58), ("ts-dtp", 0.6, 0.5, 0, 91.0, 0.68),
        ("ts-dtp", 0.6, 1.0, 0, 92.0, 0.8)]).assign(schedule=[tilted, None, None])
    evaluation = results_rows("sst2 dev", [
        ("ts-dtp", 0.6, 0.5, 0, 85.0, 0.6), ("ts-dtp", 0.6, 1.0, 0, 86.0, 0.75),
        ("ts-dtp", 0.6, 0.5, 0, 84.0, 0.7), ("ts-dtp", 0.6, 1.0, 0, 87.0, 0.8)]).assign(
        schedule=[tilted, tilted, None, None])
    both = pd.concat([selection, evaluation])
    curves = chosen_curves(both, budgets=[0.7, 0.6])  # 0.7 chooses the uniform k, 0.6 the tilted pattern
    assert set(curves["schedule"]) == {tilted} and sorted(curves["k"]) == [0.5, 1.0]
    uniform = chosen_curves(both, budgets=[0.7])
    assert uniform["schedule"].isna().all() and sorted(uniform["k"]) == [0.5, 1.0]


def test_readout_queries_name_their_own_evaluation_files_and_rows():
    readout = PruningConfig(method="ts-dtp", queries="readout")
    both = PruningConfig(method="ts-dtp", queries="readout", k_offsets=(0.5, 0.0))
    assert schedule_label(readout) == "readout" and schedule_label(both) == "dk 0.5/0 readout"
    assert training_variant(readout) == "trained readout" and training_variant(both) == "trained dk 0.5/0 readout"
    assert eval_name(readout) == "ts-dtp_k1_g0.5_sreadout" != eval_name(PruningConfig(method="ts-dtp"))
    row = pd.Series({"method": "ts-dtp", "k": 1.0, "gamma": 0.5, "eval_split": "sst2 dev", "removal": None,
                     "schedule": schedule_label(readout)})
    assert row_stem(row) == eval_name(readout)


def test_a_run_trained_with_k_offsets_is_its_own_setting_and_curve_beside_a_run_read_at_them():
    offsets = PruningConfig(method="ts-dtp", k_offsets=(0.6, 0.2, -0.2, -0.6))
    trained, read = training_variant(offsets), schedule_label(offsets)
    assert trained == "trained dk 0.6/0.2/-0.2/-0.6" and training_variant(PruningConfig(method="ts-dtp")) == ""
    selection = results_rows("sst2 train selection 2%", [
        ("ts-dtp", 0.6, 0.5, 0, 90.0, 0.58), ("ts-dtp", 0.6, 0.5, 0, 91.0, 0.58)]).assign(
        schedule=read, variant=["", trained], run_dir=["runs/uniform", "runs/late"])
    evaluation = results_rows("sst2 dev", [
        ("ts-dtp", 0.6, 0.5, 0, 85.0, 0.6), ("ts-dtp", 0.6, 1.0, 0, 86.0, 0.75),
        ("ts-dtp", 0.6, 0.5, 0, 87.0, 0.6), ("ts-dtp", 0.6, 1.0, 0, 88.0, 0.75)]).assign(
        schedule=read, variant=["", "", trained, trained], run_dir=["runs/uniform"] * 2 + ["runs/late"] * 2)
    chosen = choose_settings(pd.concat([selection, evaluation]), budgets=[0.6])
    assert chosen["run_dir"].tolist() == ["runs/late"] and chosen["metric"].tolist() == [87.0]
    curves = chosen_curves(pd.concat([selection, evaluation]), budgets=[0.6])
    assert set(curves["run_dir"]) == {"runs/late"} and sorted(curves["metric"]) == [87.0, 88.0]


def test_a_chosen_top_k_run_brings_the_keep_schedules_it_was_evaluated_at():
    trained, other = "0.65/0.45/0.3/0.2", "0.55/0.35/0.22/0.15"
    selection = results_rows("sst2 train selection 2%", [("topk", None, 1.0, 0, 90.0, 0.6)]).assign(schedule=trained)
    evaluation = results_rows("sst2 dev", [("topk", None, 1.0, 0, 85.0, 0.6), ("topk", None, 1.0, 0, 83.0, 0.55)])
    evaluation = evaluation.assign(schedule=[trained, other])
    curves = chosen_curves(pd.concat([selection, evaluation]), budgets=[0.6])
    assert sorted(curves["schedule"]) == sorted([trained, other])
