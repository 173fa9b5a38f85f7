"""Token kinds, the tidy frames behind the figures and tables, and the figure functions."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tsdtp.analysis import choose, frames, plots, stored_traces, table_files
from tsdtp.analysis.learning_curve import learning_curve_plot
from tsdtp.analysis.pending import mark_pending, read_pending
from tsdtp.analysis.token_kinds import token_kinds, whole_words
from tsdtp.runs.eval_files import eval_stem
from tsdtp.runs.results import RESULT_COLUMNS, onto_fuller_evaluations, upsert_results


def test_token_kinds_judge_whole_words():
    tokens = ["[CLS]", "it", "'", "s", "a", "dull", ",", "bor", "##ing", "film", ".", "[SEP]"]
    assert whole_words(tokens)[7:9] == ["boring", "boring"]
    assert token_kinds(tokens) == ["special", "stop word", "punctuation", "stop word", "stop word", "sentiment word",
                                   "punctuation", "sentiment word", "sentiment word", "other word", "punctuation",
                                   "special"]
    assert token_kinds(["[CLS]", "dull", "[SEP]"], sentiment=False) == ["special", "other word", "special"]


def test_sentencepiece_pieces_are_judged_by_their_whole_word():
    tokens = ["\u2581A", "\u2581", "Obama", "\u2581is", "\u2581run", "ning", ".", "</s>"]
    assert whole_words(tokens) == ["A", "Obama", "Obama", "is", "running", "running", ".", "</s>"]
    assert token_kinds(tokens, sentiment=False) == ["stop word", "other word", "other word", "stop word",
                                                    "other word", "other word", "punctuation", "special"]


def test_byte_level_pieces_and_chat_markers_are_judged_by_their_whole_word():
    tokens = ["<|im_start|>", "user", "\u010a", "Review", ":", "\u0120a", "\u0120bor", "ing", "\u0120film",
              "<|im_end|>", "\u010a\u010a"]
    assert whole_words(tokens)[5:9] == ["a", "boring", "boring", "film"]
    assert token_kinds(tokens) == ["special", "other word", "special", "other word", "punctuation", "stop word",
                                   "sentiment word", "sentiment word", "other word", "special", "special"]


def fake_traces() -> pd.DataFrame:
    """Two methods on two examples of 3 layers: ts-dtp drops 'the' after layer 0 and keeps 'great'."""
    rows = []
    sentences = {0: ["[CLS]", "the", "great", "film", "[SEP]"], 1: ["[CLS]", "a", "dull", "mess", ".", "[SEP]"]}
    for method, k in (("ts-dtp", 0.5), ("general-dtp", 0.5)):
        for example, tokens in sentences.items():
            for layer in range(3):
                for position, token in enumerate(tokens):
                    pruned = layer > 0 and token in ("the", "a", ".") or (method == "general-dtp" and layer == 2
                                                                          and token in ("great", "dull"))
                    rows.append((method, k, "sst2", example, layer, position, token, not pruned, 1, 1, True))
    return pd.DataFrame(rows, columns=["method", "k", "task", "example", "layer", "position", "token", "kept",
                                       "label", "pred", "correct"])


def test_layer_keep_and_kind_survival_summarise_traces():
    traces = fake_traces()
    keep = frames.layer_keep(traces)
    ts = keep[keep["method"] == "ts-dtp"].sort_values("layer")["keep_ratio"].tolist()
    assert ts == pytest.approx([1.0, 8 / 11, 8 / 11])
    kinds = frames.kind_survival(traces).set_index(["method", "kind"])["survival"]
    assert kinds[("ts-dtp", "sentiment word")] == 1.0
    assert kinds[("general-dtp", "sentiment word")] == pytest.approx(1 / 3)
    assert kinds[("ts-dtp", "stop word")] == 0.0 and kinds[("ts-dtp", "special")] == 1.0


def test_pick_examples_prefers_correct_examples_with_sentiment_words():
    traces = fake_traces().replace({"token": {"great": "big"}})
    methods = ["ts-dtp", "general-dtp"]
    assert frames.pick_examples(traces, methods, 2, min_tokens=3) == [1, 0]
    traces.loc[(traces["example"] == 1) & (traces["method"] == "general-dtp"), "correct"] = False
    assert frames.pick_examples(traces, methods, 2, min_tokens=3) == [0, 1]
    assert frames.pick_examples(traces, methods, 1, min_tokens=3) == [0]
    assert frames.pick_examples(traces, methods, 2, min_tokens=7) == []
    assert frames.pick_examples(traces.drop(columns="correct"), methods, 2, min_tokens=3) == [1, 0]


def test_panels_split_a_task_by_model_and_by_test_set_only_when_it_has_several():
    rows = pd.DataFrame({"task": ["sst2", "wmt16", "wmt16"], "eval_split": ["dev", "captions", "news"]})
    assert [title for title, _ in frames.panels(rows)] == ["sst2", "wmt16: captions", "wmt16: news"]
    assert [len(frame) for _, frame in frames.panels(rows)] == [1, 1, 1]
    models = pd.DataFrame({"task": ["sst2"] * 3 + ["qnli"], "eval_split": ["dev"] * 4,
                           "model": ["MiniLM", "SmolLM2 LoRA r8", "MiniLM", "MiniLM"]})
    assert [(title, len(frame)) for title, frame in frames.panels(models)] == [
        ("qnli", 1), ("sst2: MiniLM", 2), ("sst2: SmolLM2 LoRA r8", 1)]


def result_row(method: str, k: float, metric: float, flops: float, speedup: float, task: str = "sst2") -> dict:
    return {"task": task, "model": "m", "method": method, "k": k, "gamma": 0.0, "metric_name": "accuracy",
            "metric": metric, "keep_ratio": flops, "flops_ratio": flops, "speedup": speedup, "batch_size": 32,
            "device": "cpu x2", "n_eval": 8}


def test_the_runs_shown_are_one_seed_and_the_variant_named_per_task():
    results = pd.DataFrame({"task": ["sst2", "sst2", "wmt16", "wmt16", "wmt16"], "seed": [0, 1, 0, 0, np.nan],
                            "variant": [np.nan, np.nan, "exit after 1,2,3,4,5; kd 0.5", "exit after 1; kd 0.5", ""]})
    shown = choose.runs_shown(results, 0, {"wmt16": "exit after 1,2,3,4,5; kd 0.5"})
    assert shown.index.tolist() == [0, 2]
    assert choose.runs_shown(results, None, {"wmt16": ""}).index.tolist() == [0, 1, 4]
    assert choose.runs_shown(results).index.tolist() == [0, 2, 3, 4]


def test_select_settings_realization_and_results_table(tmp_path):
    rows = [result_row("none", 1.0, 90.0, 1.0, 1.0), result_row("ts-dtp", 1.0, 89.0, 0.5, 1.8),
            result_row("ts-dtp", 0.0, 85.0, 0.3, 2.5), result_row("topk", 1.0, 80.0, 0.6, float("nan"))]
    results = upsert_results(tmp_path / "results.csv", rows)
    chosen = frames.select_settings(results, 0.4)
    assert chosen.set_index("method").loc["ts-dtp", "k"] == 0.0 and len(chosen) == 3
    tilted = pd.concat([results.assign(schedule="dk 0.3/-0.3", metric=0.0), results]).reset_index(drop=True)
    assert (frames.select_settings(tilted, 0.4).set_index("method").loc["ts-dtp", "metric"]) == 85.0
    realized = frames.realization(results).set_index(["method", "k"])
    assert realized.loc[("ts-dtp", 1.0), "realization"] == pytest.approx(0.9)
    assert ("topk", 1.0) not in realized.index
    bench = pd.DataFrame({"task": ["sst2"] * 4, "method": ["none", "ts-dtp", "ts-dtp", "ts-dtp"], "k": [1.0] * 4,
                          "batch_size": [32, 32, 8, 32], "device": ["cpu", "cpu", "cpu", "cuda"],
                          "peak_activation_bytes": [4 * 2**20, 2 * 2**20, 2**20, 50 * 2**20]})
    table = frames.results_table(results, bench)
    assert list(table["method"]) == ["none", "ts-dtp", "ts-dtp", "topk"]
    assert table.set_index(["method", "k"]).loc[("ts-dtp", 1.0), "memory_mb"] == 2.0
    assert np.isnan(frames.results_table(results)["memory_mb"]).all()
    written = table_files.write_table(table, "results_table", tmp_path)
    assert [p.suffix for p in written] == [".csv", ".md", ".tex"]
    markdown = (tmp_path / "results_table.md").read_text().splitlines()
    assert len(markdown) == 2 + len(table) and markdown[2].startswith("| sst2 |  | none | 1.00 |")
    assert "seed" not in table.columns
    seeded = frames.results_table(pd.concat([results.assign(seed=1), results.assign(seed=0, schedule="dk 0.1/-0.1")]))
    assert list(seeded.columns[5:7]) == ["seed", "schedule"]
    assert seeded.loc[seeded["method"] == "ts-dtp", "seed"].tolist() == [0, 1, 0, 1]
    latex = (tmp_path / "results_table.tex").read_text()
    assert r"\toprule" in latex and r"metric\_name" in latex and latex.count(r"\\") == 1 + len(table)


def test_speed_figures_use_the_fastest_baseline_and_mark_older_rows(tmp_path):
    old = tmp_path / "old.csv"
    before = ["eval_split", "keep_target", "scorer_overhead", "run_dir", "command"]
    rows = [result_row("none", 1.0, 90.0, 1.0, 1.0), result_row("ts-dtp", 1.0, 89.0, 0.5, 2.6)]
    pd.DataFrame(rows).reindex(columns=[*RESULT_COLUMNS, *before]).to_csv(old, index=False)
    older = frames.realization(pd.read_csv(old))
    assert (older["speedup_basis"] == frames.PADDED_BASIS).all()
    fastest = dict(result_row("ts-dtp", 0.5, 88.0, 0.4, 2.0), speedup_baseline="hf_sorted", speedup_vs_hf=3.5)
    results = upsert_results(old, [fastest])
    realized = frames.realization(results).set_index(["method", "k"])
    assert realized.loc[("ts-dtp", 0.5), "realization"] == pytest.approx(0.8)
    assert realized.loc[("ts-dtp", 0.5), "speedup_basis"] == frames.FASTEST_BASIS
    assert realized.loc[("ts-dtp", 1.0), "speedup_basis"] == frames.PADDED_BASIS
    figure = plots.realization_plot(frames.realization(results))
    assert "fastest dense baseline" in figure.axes[0].get_ylabel()
    assert plots.OLDER_ROWS_NOTE in figure.axes[0].get_ylabel()
    assert sum(bar.get_hatch() == "//" for bar in figure.axes[0].patches) == 2
    tradeoff = plots.tradeoff_plot(results)
    assert plots.OLDER_ROWS_NOTE in tradeoff.axes[1].get_xlabel()
    assert [line.get_linestyle() for line in tradeoff.axes[1].get_lines()[:3]] == ["--", "-", "--"]
    current = plots.tradeoff_plot(results[results["speedup_baseline"].notna()])
    assert current.axes[1].get_xlabel() == plots.SPEED_AXIS


def test_results_csv_upsert_replaces_rows_whose_keys_have_missing_values(tmp_path):
    path = tmp_path / "results.csv"
    upsert_results(path, [result_row("none", 1.0, 90.0, 1.0, 1.0)])
    table = upsert_results(path, [result_row("none", 1.0, 91.0, 1.0, 1.0)])
    assert list(table.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert len(table) == 1 and table.loc[0, "metric"] == 91.0


def test_a_benchmark_on_a_subset_adds_its_timing_to_a_fuller_evaluation_and_nothing_else(tmp_path):
    path = tmp_path / "results.csv"
    upsert_results(path, [{**result_row("ts-dtp", 0.5, 83.0, 0.6, float("nan")), "n_eval": 872}])
    timed = [{**result_row("ts-dtp", 0.5, 81.0, 0.62, 1.3), "n_eval": 256, "speedup_baseline": "engine_sorted"},
             {**result_row("ts-dtp", 1.0, 84.0, 0.8, 1.1), "n_eval": 256}]
    table = upsert_results(path, onto_fuller_evaluations(path, timed)).set_index("k")
    assert table.loc[0.5, ["metric", "keep_ratio", "n_eval", "speedup"]].tolist() == [83.0, 0.6, 872, 1.3]
    assert table.loc[0.5, "speedup_baseline"] == "engine_sorted"
    assert table.loc[1.0, ["metric", "n_eval"]].tolist() == [84.0, 256]  # no fuller twin: added as measured


def test_figures_have_one_panel_per_example_method_or_task_and_save_atomically(tmp_path):
    traces = fake_traces()
    heat = plots.keep_heatmaps(traces, [0, 1], ["ts-dtp", "general-dtp"])
    assert isinstance(heat, Figure) and len(heat.axes) == 4
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == ["[CLS]", "the", "great", "film", "[SEP]"]
    assert len(plots.layer_keep_plot(frames.layer_keep(traces)).axes) == 1
    results = pd.DataFrame([result_row("none", 1.0, 90.0, 1.0, 1.0), result_row("ts-dtp", 0.5, 88.0, 0.5, 1.7),
                            result_row("none", 1.0, 80.0, 1.0, 1.0, task="qnli")])
    assert len(plots.tradeoff_plot(results).axes) == 4
    assert len(plots.realization_plot(frames.realization(results)).axes) == 2
    bench = pd.DataFrame({"task": ["sst2"], "method": ["none"], "memory_mb": [12.0]})
    assert len(plots.memory_plot(frames.bench_memory(bench)).axes) == 1
    paths = plots.save_figure(plots.token_kind_plot(frames.kind_survival(traces)), "kinds", tmp_path / "figs")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["kinds.pdf", "kinds.png"]
    assert plots.keep_heatmaps(traces, [], ["ts-dtp"]).axes[0].texts


def write_run_traces(run_dir, traces: pd.DataFrame) -> pd.DataFrame:
    """Write each method's trace where an evaluation of `run_dir` would; returns their summary rows."""
    rows = []
    for (method, k), trace in traces.groupby(["method", "k"]):
        gamma = 0.5 if method == "ts-dtp" else 0.0
        path = run_dir / "eval" / f"{eval_stem(method, k, gamma)}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        trace.to_parquet(path, index=False)
        rows.append({"task": "sst2", "method": method, "k": k, "gamma": gamma, "run_dir": str(run_dir)})
    return pd.DataFrame(rows)


def test_stored_traces_are_compact_and_load_back_as_the_evaluation_wrote_them(tmp_path):
    traces = fake_traces()
    rows = write_run_traces(tmp_path / "runs" / "sst2-ts-dtp-0123456789ab", traces)
    stored = tmp_path / "data" / "traces"
    written = stored_traces.store_traces(pd.concat([rows, rows]), stored)
    assert sorted(p.relative_to(stored).as_posix() for p in written) == [
        "sst2-ts-dtp-0123456789ab/general-dtp_k0.5_g0.parquet", "sst2-ts-dtp-0123456789ab/ts-dtp_k0.5_g0.5.parquet"]
    table = pd.read_parquet(written[0])
    assert list(table.columns) == ["example", "position", "token", "correct", "kept_0", "kept_1", "kept_2"]
    assert len(table) == 11
    shutil.rmtree(tmp_path / "runs")
    loaded = stored_traces.load_stored_traces(rows, stored)
    key = ["method", "example", "layer", "position"]
    expected = traces.drop(columns=["label", "pred"]).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded[expected.columns].sort_values(key).reset_index(drop=True), expected,
                                  check_dtype=False)
    assert frames.kind_survival(loaded).equals(frames.kind_survival(traces))


def test_stored_translation_traces_keep_one_test_set_per_row(tmp_path):
    trace = fake_traces()
    trace = trace[trace["method"] == "ts-dtp"].drop(columns=["label", "pred", "correct"])
    both = pd.concat([trace.assign(eval_split="captions"), trace.assign(eval_split="news", kept=True)])
    rows = write_run_traces(tmp_path / "runs" / "wmt16-ts-dtp-0123456789ab", both)
    stored = tmp_path / "traces"
    stored_traces.store_traces(rows, stored)
    news = stored_traces.load_stored_traces(rows.assign(eval_split="news"), stored)
    assert set(news["eval_split"]) == {"news"} and news["kept"].all() and len(news) == len(trace)
    captions = stored_traces.load_stored_traces(rows.assign(eval_split="captions"), stored)
    assert captions["kept"].sum() == trace["kept"].sum()


def test_missing_stored_traces_give_a_reason_and_a_pending_note(tmp_path):
    rows = pd.DataFrame([{"task": "sst2", "method": m, "k": 0.5, "gamma": 0.0, "run_dir": f"runs/sst2-{m}-abc"}
                         for m in ("none", "topk", "random", "ts-dtp", "general-dtp")])
    traces, why = stored_traces.traces_or_reason(rows, tmp_path / "traces", "sst2")
    assert traces is None
    assert why == (f"no keep traces in {tmp_path / 'traces'} for 5 evaluation(s): sst2 none k=0.5, sst2 topk k=0.5, "
                   "sst2 random k=0.5 and 2 more")
    assert stored_traces.traces_or_reason(rows.iloc[:0], tmp_path, "qnli")[1] == "results.csv has no rows for qnli"
    with pytest.raises(FileNotFoundError, match="no stored keep trace"):
        stored_traces.load_stored_traces(rows, tmp_path)
    note = mark_pending("layer_keep", why + "\n", tmp_path / "figures")
    assert note.startswith("**Not drawn:** `layer_keep` awaits its data: no keep traces")
    assert read_pending(tmp_path / "figures") == {"layer_keep": why} and read_pending(tmp_path / "none") == {}


def test_the_learning_curve_draws_each_logged_loss_part_and_the_keep_rate_when_there_is_one():
    steps = np.arange(1, 41)
    dense = pd.DataFrame({"step": steps, "loss": 1 / steps, "ce": 1 / steps})
    pruned = dense.assign(aux=0.1, soft_keep=np.linspace(1, 0.6, 40), keep_target=0.6)
    one, two = learning_curve_plot(dense, window=5), learning_curve_plot(pruned, window=5)
    assert len(one.axes) == 1 and len(two.axes) == 2
    thick = {line.get_label(): line for line in two.axes[0].lines if not line.get_label().startswith("_")}
    assert sorted(thick) == ["cross-entropy", "keep loss", "total"]
    assert np.allclose(thick["total"].get_ydata(), pruned["loss"].rolling(5, min_periods=1).mean())
    assert np.allclose(two.axes[1].lines[1].get_ydata(), 0.6)
    assert len(learning_curve_plot(pruned.drop(columns="keep_target")).axes[1].lines) == 1
