"""The efficiency benchmark: FLOPs cross-checked by FlopCounterMode, contracted rows, devices.

No wall-clock assertions: timings are only checked to be positive and consistent.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from conftest import SST2_ROWS

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, collate, encode_texts
from tsdtp.classification.evaluate import predict_batch
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.speed import measured_speedup
from tsdtp.core.config import PruningConfig
from tsdtp.core.flops import (
    computed_flops,
    counted_flops,
    encoder_flops,
    encoder_shape,
    method_flops,
    method_layers,
)
from tsdtp.errors import ConfigError
from tsdtp.measure.bench import DEFAULT_METHODS, BenchResult, BenchSettings, run_benchmark, with_baselines
from tsdtp.measure.bench_columns import BENCH_COLUMNS
from tsdtp.measure.devices import device_name, resolve_device, resolve_dtype
from tsdtp.measure.memory import peak_activation_bytes, running_peak
from tsdtp.measure.methods import BenchSpec, parse_method, parse_methods, resolve_pruning, spec_label
from tsdtp.measure.records import BENCH_KEY_COLUMNS, results_rows
from tsdtp.measure.session import BenchData, LoadedRun, build_specs
from tsdtp.runs.results import RESULT_COLUMNS, SPEED_COLUMNS, upsert_results
from tsdtp.runs.speedups import (
    BASELINES,
    DATASET_ORDER,
    HF,
    RATIO_COLUMNS,
    SORTED_ORDER,
    SPEEDUP_COLUMNS,
    fastest_baseline,
    speedup_columns,
)
from tsdtp.runs.tables import upsert_csv

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def split(tokenizer) -> EncodedSplit:
    texts = [(text,) for text, _ in SST2_ROWS]
    ids, types = encode_texts(tokenizer, texts, 128)
    return EncodedSplit(ids, types, [label for _, label in SST2_ROWS], texts)


def _single(split: EncodedSplit, index: int, pad_id: int) -> dict[str, torch.Tensor]:
    return collate(split, [index], pad_id)


@pytest.mark.parametrize("config", [PruningConfig(), PruningConfig(method="ts-dtp", k=0.0),
                                    PruningConfig(method="topk", gamma=0.0)])
def test_analytic_flops_match_flop_counter_within_5_percent(model, split, tokenizer, config):
    model.pruning = config
    shape = encoder_shape(model)
    analytic = counted = 0.0
    with torch.no_grad():
        for index in range(len(split)):
            batch = _single(split, index, tokenizer.pad_token_id)
            _, tokens, _ = predict_batch(model, batch)
            assert config.method == "none" or tokens[0, -1] < tokens[0, 0]
            analytic += method_flops(tokens, shape, config).total
            counted += counted_flops(lambda: predict_batch(model, batch))
    assert counted == pytest.approx(analytic, rel=0.05)


def test_library_dense_forward_matches_analytic_flops(model, split, tokenizer):
    shape = encoder_shape(model)
    batch = _single(split, 0, tokenizer.pad_token_id)
    tokens = batch["attention_mask"].sum(-1, keepdim=True).expand(-1, shape.num_layers)
    with torch.no_grad():
        counted = counted_flops(lambda: model.adapter.dense_logits(batch))
    assert counted == pytest.approx(method_flops(tokens, shape, PruningConfig()).total, rel=0.05)


@pytest.mark.parametrize("config", [PruningConfig(method="ts-dtp", k=0.0),
                                    PruningConfig(method="reference-masking", k=0.0)])
def test_padding_aware_flops_match_the_counter_on_a_padded_batch(model, batch, config):
    model.pruning = config
    shape = encoder_shape(model)
    layers, passes = method_layers(config, shape.num_layers)
    with torch.no_grad():
        _, tokens, _ = predict_batch(model, batch)
        counted = counted_flops(lambda: predict_batch(model, batch))
    packed = config.method != "reference-masking"
    assert counted == pytest.approx(computed_flops(tokens, shape, layers, passes, packed=packed), rel=0.05)


def test_reference_masking_costs_about_two_dense_passes(model, batch):
    config = PruningConfig(method="reference-masking", k=0.0)
    model.pruning = config
    with torch.no_grad():
        _, tokens, _ = predict_batch(model, batch)
    report = method_flops(tokens, encoder_shape(model), config)
    assert 2.0 <= report.ratio < 2.05


def _specs(model: PrunedClassifier) -> list[BenchSpec]:
    """Dense, the engine without pruning, TS-DTP and the reference, all on the same weights."""
    return [BenchSpec(model, None), BenchSpec(model, PruningConfig()),
            BenchSpec(model, PruningConfig(method="ts-dtp", k=0.0)),
            BenchSpec(model, PruningConfig(method="reference-masking", k=0.0))]


@pytest.fixture(scope="module")
def bench_rows(base_model, split, tokenizer) -> pd.DataFrame:
    specs = _specs(base_model)
    data = BenchData("sst2", MODEL, "sst2 dev", split, tokenizer.pad_token_id)
    settings = BenchSettings(batch_sizes=(1, 8), repeats=1, warmup=0, threads=1)
    base_model.pruning = PruningConfig(method="topk", gamma=0.0)
    rows = run_benchmark(specs, data, settings).rows
    assert base_model.pruning == PruningConfig(method="topk", gamma=0.0), "the caller's pruning is restored"
    base_model.pruning = PruningConfig()
    return rows


def test_bench_rows_have_the_contracted_columns(bench_rows):
    assert list(bench_rows.columns) == list(BENCH_COLUMNS)
    assert len(bench_rows) == 16
    assert set(bench_rows["batch_size"]) == {1, 8}
    assert bench_rows["order"].tolist()[:8] == [DATASET_ORDER] * 4 + [SORTED_ORDER] * 4
    assert (bench_rows["sorted_by_length"] == (bench_rows["order"] == SORTED_ORDER)).all()
    assert (bench_rows["device"] == "cpu").all()
    assert (bench_rows["threads"] == 1).all() and (bench_rows["dtype"] == "fp32").all()
    assert (bench_rows["time_s"] > 0).all() and (bench_rows["peak_memory_mb"] > 0).all()
    assert bench_rows["label"].tolist()[:4] == ["dense", "none", "ts-dtp k=0 g=0.5", "reference-masking k=0 g=0.5"]
    assert bench_rows["flops_counted_ratio"].between(0.95, 1.05).all()
    assert bench_rows["padding_waste"].between(0.0, 1.0).all()


def test_bench_times_the_dense_baselines_in_both_orders_and_uses_the_fastest(bench_rows):
    assert set(BASELINES) == {"hf", "hf_sorted", "engine", "engine_sorted"}
    for name, (forward, order) in BASELINES.items():
        label = "dense" if forward == HF else "none"
        own = bench_rows[(bench_rows["label"] == label) & (bench_rows["order"] == order)]
        assert own[f"speedup_vs_{name}"].tolist() == pytest.approx([1.0, 1.0])
    for _, rows in bench_rows.groupby("batch_size"):
        baseline = rows["speedup_baseline"].iloc[0]
        assert baseline in BASELINES and (rows["speedup_baseline"] == baseline).all()
        forward, order = BASELINES[baseline]
        fastest = rows[(rows["label"] == ("dense" if forward == HF else "none")) & (rows["order"] == order)]
        assert fastest["time_s"].iloc[0] == rows[rows["label"].isin(["dense", "none"])]["time_s"].min()
        assert (rows["speedup"] == rows[f"speedup_vs_{baseline}"]).all()
        assert fastest["speedup"].iloc[0] == pytest.approx(1.0)
    for _, method in bench_rows.groupby(["label", "batch_size"]):
        assert (method[list(RATIO_COLUMNS)].nunique() == 1).all(), "the speedups belong to the method"


def test_bench_speedups_and_realization_are_consistent(bench_rows):
    dense = bench_rows[bench_rows["label"] == "dense"]
    assert (dense["flops_ratio"] == 1.0).all()
    for _, row in bench_rows.iterrows():
        assert row["flops_speedup"] == pytest.approx(1.0 / row["flops_ratio"])
        assert row["realization"] == pytest.approx(row["speedup"] / row["flops_speedup"])
        assert row["sentences_per_s"] == pytest.approx(row["n_eval"] / row["time_s"])
        assert row["sentences_per_s_min"] <= row["sentences_per_s"] <= row["sentences_per_s_max"]
    pruned = bench_rows[bench_rows["label"].str.startswith("ts-dtp")]
    assert (pruned["flops_ratio"] < 1.0).all() and (pruned["scorer_overhead"] > 0).all()
    reference = bench_rows[bench_rows["method"] == "reference-masking"]
    assert reference["flops_ratio"].between(2.0, 2.05).all()


def test_bench_results_rows_carry_the_contracted_columns(bench_rows, base_model, tmp_path):
    run = LoadedRun("", base_model, TrainConfig())
    rows = results_rows(BenchResult(bench_rows), _specs(base_model), {"": run}, batch_size=8)
    assert [r["method"] for r in rows] == ["none", "ts-dtp", "reference-masking"]
    table = upsert_results(tmp_path / "results.csv", rows)
    assert list(table.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert (table["device"] == "cpu x1").all() and (table["batch_size"] == 8).all()
    assert not table["eval_split"].str.endswith("length-sorted").any()
    assert set(SPEED_COLUMNS) <= set(table.columns) and table["speedup_baseline"].isin(list(BASELINES)).all()
    bench = bench_rows[(bench_rows["batch_size"] == 8) & (bench_rows["order"] == DATASET_ORDER)]
    assert sorted(table["speedup"]) == sorted(bench["speedup"].iloc[[0, 2, 3]].round(3))
    again = upsert_csv(tmp_path / "bench.csv", bench_rows, BENCH_KEY_COLUMNS)
    assert len(upsert_csv(tmp_path / "bench.csv", bench_rows, BENCH_KEY_COLUMNS)) == len(again) == len(bench_rows)


def test_speedup_is_against_the_fastest_baseline_in_its_order():
    baselines = {"hf": [2.0, 2.4, 2.2], "hf_sorted": [1.2, 1.0, 1.1], "engine": [1.5, 1.6, 1.4]}
    method = {DATASET_ORDER: [1.0, 1.2, 1.0], SORTED_ORDER: [0.5, 0.4, 0.5]}
    columns = speedup_columns(method, baselines)
    assert columns["speedup_baseline"] == "hf_sorted"
    assert columns["speedup"] == pytest.approx(2.4) and columns["speedup_vs_hf_sorted"] == pytest.approx(2.4)
    assert (columns["speedup_min"], columns["speedup_max"]) == pytest.approx((2.2, 2.5))
    assert columns["speedup_vs_hf"] == pytest.approx(2.0) and columns["speedup_vs_engine"] == pytest.approx(1.4)
    assert math.isnan(columns["speedup_vs_engine_sorted"])
    assert fastest_baseline({"hf": [1.0], "engine": [0.5], "engine_sorted": []}) == "engine"
    assert math.isnan(speedup_columns({DATASET_ORDER: [1.0]}, {})["speedup"])


def test_every_bench_measures_the_dense_baselines_in_known_orders():
    assert with_baselines("run,topk") == "dense,none,run,topk"
    assert with_baselines(DEFAULT_METHODS) == DEFAULT_METHODS
    assert with_baselines("none, ts-dtp") == "dense,none, ts-dtp"
    for orders in ((), ("shuffled",), (DATASET_ORDER, DATASET_ORDER)):
        with pytest.raises(ConfigError, match="batch orders"):
            BenchSettings(orders=orders)


def test_eval_speed_is_against_the_fastest_baseline(model, split, tokenizer):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0)
    columns = measured_speedup(model, split.head(6), 3, tokenizer.pad_token_id, repeats=1, warmup=0)
    assert model.pruning == PruningConfig(method="ts-dtp", k=0.0)
    assert set(columns) == set(SPEEDUP_COLUMNS) and columns["speedup_baseline"] in BASELINES
    assert columns["speedup"] == columns[f"speedup_vs_{columns['speedup_baseline']}"] > 0


def test_bench_runs_in_bf16_on_cpu(base_model, split, tokenizer):
    specs = [BenchSpec(base_model, None), BenchSpec(base_model, PruningConfig(method="ts-dtp", k=0.0))]
    data = BenchData("sst2", MODEL, "sst2 dev", split, tokenizer.pad_token_id)
    settings = BenchSettings(batch_sizes=(8,), repeats=1, warmup=0, threads=1, dtype="bf16", measure_memory=False,
                             check_flops=False)
    rows = run_benchmark(specs, data, settings).rows
    assert (rows["dtype"] == "bf16").all() and rows["accuracy"].notna().all()
    assert next(base_model.parameters()).dtype == torch.float32


def test_device_and_dtype_selection():
    assert resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert resolve_device("auto", cuda_available=True) == torch.device("cuda")
    assert resolve_device("cuda", cuda_available=True) == torch.device("cuda")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda", cuda_available=False)
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ConfigError, match="only benchmarked on CUDA"):
        resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="unknown dtype"):
        resolve_dtype("int8", torch.device("cpu"))
    assert device_name(torch.device("cpu"))


def test_method_lists_parse_and_resolve_against_the_trained_settings():
    trained = PruningConfig(method="ts-dtp", k=1.0, gamma=0.5)
    request = parse_method("ts-dtp:k=0.5:prune_layers=1/2@runs/x")
    assert request.run_dir == "runs/x"
    pruning = resolve_pruning(request, trained)
    assert (pruning.method, pruning.k, pruning.prune_layers) == ("ts-dtp", 0.5, (1, 2))
    assert resolve_pruning(parse_method("topk"), trained).gamma == 0.0
    assert resolve_pruning(parse_method("run:k=2"), trained).k == 2.0
    assert resolve_pruning(parse_method("dense"), trained) is None
    assert [spec_label(resolve_pruning(r, trained)) for r in parse_methods("dense,run,topk")] == [
        "dense", "ts-dtp k=1 g=0.5", "topk final=0.3"]
    for bad in ("magic", "ts-dtp:speed=2", "ts-dtp:k=fast", "dense:k=1"):
        with pytest.raises(ConfigError):
            parse_method(bad)


def test_the_default_method_list_measures_a_dense_run_once_per_method(base_model):
    runs = {"runs/dense": LoadedRun("runs/dense", base_model, TrainConfig())}
    specs = build_specs(parse_methods(DEFAULT_METHODS), runs, "runs/dense")
    assert [spec_label(s.pruning) for s in specs] == [
        "dense", "none", "general-dtp-posthoc k=1", "topk final=0.3", "reference-masking k=1 g=0.5"]


def test_running_peak_and_measured_cpu_activation_memory():
    assert running_peak([4, 4, -4, 4, -8]) == 8
    assert running_peak([-4, 2]) == 0

    def forward() -> torch.Tensor:
        first = torch.ones(256, 1024)
        second = first * 2
        del first
        return second + 1

    peak = peak_activation_bytes(forward, torch.device("cpu"))
    assert 2 * 2**20 <= peak < 3 * 2**20


def test_pruned_and_engine_peak_memory_is_at_or_below_the_library_forward(bench_rows):
    for _, rows in bench_rows.groupby(["batch_size", "order"]):
        peaks = rows.set_index("label")["peak_memory_mb"]
        assert peaks["ts-dtp k=0 g=0.5"] <= peaks["dense"] and peaks["none"] <= peaks["dense"]


def test_a_cls_only_bench_runs_every_method_and_counts_the_flops_of_its_last_layer(base_model, split, tokenizer):
    specs = _specs(base_model)[:3]
    data = BenchData("sst2", MODEL, "sst2 dev", split, tokenizer.pad_token_id)
    settings = BenchSettings(batch_sizes=(8,), repeats=1, warmup=0, threads=1, orders=(DATASET_ORDER,),
                             cls_only_last_layer=True)
    rows = run_benchmark(specs, data, settings).rows
    assert rows["label"].tolist() == ["dense +cls-only", "none +cls-only", "ts-dtp k=0 g=0.5 +cls-only"]
    assert rows["cls_only_last_layer"].all() and not base_model.cls_only_last_layer
    assert rows["flops_counted_ratio"].between(0.95, 1.05).all()
    assert (rows.loc[rows["label"] == "dense +cls-only", "flops_ratio"] == 1.0).all()
    full = encoder_flops(torch.full((1, 6), 10), encoder_shape(base_model), ())
    last = encoder_flops(torch.full((1, 6), 10), encoder_shape(base_model), (), cls_only_last_layer=True)
    assert last.dense < full.dense and last.layers < full.layers
    with pytest.raises(ConfigError, match="does not apply to reference-masking"):
        run_benchmark(_specs(base_model), data, settings)
