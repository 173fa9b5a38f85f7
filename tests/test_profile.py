"""The torch.profiler time breakdown: attribution rules, per-method components, the CLI and its errors.

No wall-clock assertions: times are only checked to be positive, zero or consistent.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import SST2_ROWS
from matplotlib.figure import Figure
from torch.profiler import ProfilerActivity, profile
from transformers import MarianConfig, MarianMTModel

from tsdtp.analysis.plots import time_breakdown_plot
from tsdtp.classification.checkpoint import save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, encode_texts
from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import scored_layers
from tsdtp.core.regions import (
    ATTENTION,
    ATTENTION_OUTPUT,
    COMPONENTS,
    EMBEDDINGS,
    FFN,
    HEAD,
    KEEP,
    LAYERNORM,
    OTHER,
    PACKING,
    QKV,
    SCORER,
    parse_region,
    region,
    region_name,
)
from tsdtp.errors import ConfigError
from tsdtp.measure.methods import BenchSpec
from tsdtp.measure.profile import (
    FORWARD,
    LAYER_PROFILE_COLUMNS,
    PROFILE_COLUMNS,
    ProfileSettings,
    attribute,
    breakdown_frame,
    by_component,
    labelled_modules,
    run_profile,
    time_breakdown,
)
from tsdtp.measure.session import BenchData
from tsdtp.translation.model import PrunedTranslator

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TS_DTP = PruningConfig(method="ts-dtp", k=0.0)


@pytest.fixture(scope="module")
def data(tokenizer) -> BenchData:
    texts = [(text,) for text, _ in SST2_ROWS]
    ids, types = encode_texts(tokenizer, texts, 128)
    split = EncodedSplit(ids, types, [label for _, label in SST2_ROWS], texts)
    return BenchData("sst2", MODEL, "sst2 dev", split, tokenizer.pad_token_id)


@pytest.fixture(scope="module")
def profiled(base_model, data, tmp_path_factory):
    specs = [BenchSpec(base_model, None), BenchSpec(base_model, PruningConfig()), BenchSpec(base_model, TS_DTP)]
    traces = tmp_path_factory.mktemp("traces")
    settings = ProfileSettings(batch_sizes=(1, 8), warmup=0, threads=1, trace_dir=traces)
    base_model.pruning = PruningConfig(method="topk", gamma=0.0)
    result = run_profile(specs, data, settings)
    assert base_model.pruning == PruningConfig(method="topk", gamma=0.0), "the caller's pruning is restored"
    base_model.pruning = PruningConfig()
    return result, traces


def _event(name: str, parent=None, cpu: float = 0.0, cuda: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(name=name, cpu_parent=parent, self_cpu_time_total=cpu, self_device_time_total=cuda,
                           device_type=torch.autograd.DeviceType.CPU, is_async=False)


def test_ops_are_credited_to_the_innermost_region_and_layer_norms_to_layernorm():
    root = _event(FORWARD, cpu=5.0)
    ffn = _event(region_name(FFN, 2), root, cpu=1.0)
    matmul = _event("aten::addmm", ffn, cpu=10.0, cuda=7.0)
    norm = _event("aten::layer_norm", ffn, cpu=2.0)
    inner = _event("aten::native_layer_norm", norm, cpu=3.0, cuda=4.0)
    scorer = _event(region_name(SCORER, 2), ffn, cpu=0.5)
    softmax = _event("aten::softmax", scorer, cpu=4.0)
    head = _event(region_name(HEAD), root, cpu=6.0)
    outside = _event("aten::empty", None, cpu=100.0)
    stray = _event(region_name(QKV, 0), None, cpu=100.0)
    events = [root, ffn, matmul, norm, inner, scorer, softmax, head, outside, stray]
    assert attribute(events) == {(OTHER, None): 5.0, (FFN, 2): 11.0, (LAYERNORM, 2): 5.0, (SCORER, 2): 4.5,
                                 (HEAD, None): 6.0}
    assert attribute(events, "cuda") == {(OTHER, None): 0.0, (FFN, 2): 7.0, (LAYERNORM, 2): 4.0, (SCORER, 2): 0.0,
                                         (HEAD, None): 0.0}
    with pytest.raises(ConfigError, match="unknown clock"):
        attribute(events, "tpu")


def test_breakdown_frame_shares_and_component_totals():
    frame = breakdown_frame({(FFN, 0): 3000.0, (FFN, 1): 1000.0, (OTHER, None): 1000.0, (QKV, 1): 5000.0}, 2)
    assert frame["component"].tolist() == [QKV, FFN, FFN, OTHER]
    assert frame["ms_per_batch"].tolist() == [2.5, 1.5, 0.5, 0.5]
    assert frame["share"].sum() == pytest.approx(1.0)
    totals = by_component(frame).set_index("component")
    assert totals.index.tolist() == list(COMPONENTS)
    assert totals.loc[FFN, "total_ms"] == 4.0 and totals.loc[FFN, "share"] == pytest.approx(0.4)
    assert totals.loc[SCORER, "total_ms"] == 0.0
    with pytest.raises(ConfigError, match="at least one profiled batch"):
        breakdown_frame({}, 0)


def test_regions_are_a_shared_no_op_without_a_profiler():
    assert region(FFN, 3) is region(KEEP)
    with profile(activities=[ProfilerActivity.CPU]):
        assert region(FFN, 3) is not region(FFN, 3)
    assert parse_region(region_name(FFN, 3)) == (FFN, 3)
    assert parse_region(region_name(HEAD)) == (HEAD, None)
    assert parse_region("aten::mm") is None and parse_region("tsdtp: forward") is None


def test_shares_sum_to_one_and_every_component_is_reported(profiled):
    result, _ = profiled
    rows = result.components
    assert list(rows.columns) == list(PROFILE_COLUMNS)
    assert list(result.layers.columns) == list(LAYER_PROFILE_COLUMNS)
    assert (rows["clock"] == "cpu").all() and (rows["threads"] == 1).all() and (rows["device"] == "cpu").all()
    for (label, batch_size), group in rows.groupby(["label", "batch_size"]):
        assert group["component"].tolist() == list(COMPONENTS)
        assert group["share"].sum() == pytest.approx(1.0, abs=1e-6)
        assert group["n_batches"].iloc[0] == (8 if batch_size == 1 else 1)
    assert (rows["ms_per_batch"] >= 0).all() and (rows["unprofiled_ms_per_batch"] > 0).all()


def test_ffn_projections_and_attention_are_measured_for_every_method(profiled):
    rows = profiled[0].components.set_index(["label", "batch_size", "component"])["ms_per_batch"]
    for label in ("dense", "none", "ts-dtp k=0 g=0.5"):
        for batch_size in (1, 8):
            for component in (FFN, QKV, "attention core", "attention output projection", LAYERNORM, "embeddings",
                              HEAD):
                assert rows[label, batch_size, component] > 0, (label, batch_size, component)


def test_scorer_and_keep_time_only_where_tokens_are_scored_and_removed(profiled):
    rows = profiled[0].components.set_index(["label", "batch_size", "component"])["ms_per_batch"]
    for batch_size in (1, 8):
        assert rows["ts-dtp k=0 g=0.5", batch_size, SCORER] > 0
        assert rows["ts-dtp k=0 g=0.5", batch_size, KEEP] > 0
        for label in ("dense", "none"):
            assert rows[label, batch_size, SCORER] == 0 and rows[label, batch_size, KEEP] == 0
        assert rows["dense", batch_size, "packing"] == 0
    assert rows["none", 8, "packing"] > 0


def test_per_layer_rows_add_up_to_the_components(profiled):
    result, _ = profiled
    layers, rows = result.layers, result.components
    ffn = layers[(layers["label"] == "dense") & (layers["batch_size"] == 1) & (layers["component"] == FFN)]
    assert ffn["layer"].tolist() == list(range(6))
    summed = layers.groupby(["label", "batch_size", "component"])["total_ms"].sum()
    indexed = rows.set_index(["label", "batch_size", "component"])["total_ms"]
    assert summed.to_numpy() == pytest.approx(indexed.loc[summed.index].to_numpy())
    scorer = layers[(layers["label"] == "ts-dtp k=0 g=0.5") & (layers["component"] == SCORER)]
    assert set(scorer["layer"]) == set(scored_layers(TS_DTP, 6))


def test_chrome_traces_are_written_per_method_and_batch_size(profiled):
    _, traces = profiled
    names = sorted(path.name for path in Path(traces).iterdir())
    assert names == sorted(f"sst2-{label}-b{size}-fp32.json" for label in ("dense", "none", "ts-dtp-k-0-g-0.5")
                           for size in (1, 8))


def test_module_hooks_label_the_dense_forward_and_are_removed(model, batch):
    adapter = model.adapter
    with torch.inference_mode(), labelled_modules(adapter.module_components()):
        frame = time_breakdown(adapter.dense_logits, [batch], torch.device("cpu"), warmup=0)
    assert set(frame["component"]) >= {QKV, "attention core", FFN, LAYERNORM, HEAD}
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())


def _tiny_translator(pruning: PruningConfig) -> PrunedTranslator:
    """A randomly initialised three-layer Marian (no tokenizer: 0 is padding, 1 is `</s>`)."""
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=64, decoder_vocab_size=64, d_model=32, encoder_layers=3, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                          decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0)
    return PrunedTranslator(MarianMTModel(config), [1], pruning).eval()


def _source_batch(lengths: list[int]) -> dict[str, torch.Tensor]:
    """Random source ids ending in `</s>`, padded to the longest."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length - 1] = torch.randint(2, 64, (length - 1,), generator=generator)
        input_ids[row, length - 1] = 1
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


@pytest.mark.parametrize("pruning", [PruningConfig(), TS_DTP], ids=["none", "ts-dtp"])
def test_the_marian_encoder_is_broken_down_into_the_bert_components(pruning):
    translator = _tiny_translator(pruning)
    with torch.inference_mode():
        frame = time_breakdown(lambda b: translator.encode(b["input_ids"], b["attention_mask"]),
                               [_source_batch([12, 7, 9, 4])], torch.device("cpu"), warmup=0)
    measured = set(frame.loc[frame["total_ms"] > 0, "component"]) - {OTHER}
    bert_layer = {EMBEDDINGS, QKV, ATTENTION, ATTENTION_OUTPUT, FFN, LAYERNORM, PACKING}
    assert measured == bert_layer | ({SCORER, KEEP} if pruning.prunes else set())
    for component in (QKV, ATTENTION, ATTENTION_OUTPUT, FFN, LAYERNORM):
        assert frame.loc[frame["component"] == component, "layer"].tolist() == [0, 1, 2], component
    assert frame["share"].sum() == pytest.approx(1.0)


def test_time_breakdown_plot_returns_a_figure(profiled):
    assert isinstance(time_breakdown_plot(profiled[0].components), Figure)
    assert isinstance(time_breakdown_plot(profiled[0].components, clock="cuda"), Figure)


def test_cli_writes_the_profile_tables(base_model, glue_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir, base_model, TrainConfig(task="sst2", pruning=TS_DTP))
    tables = tmp_path / "tables"
    argv = ["profile", "--run-dir", str(run_dir), "--data-dir", str(glue_dir), "--methods", "dense,run",
            "--batch-sizes", "4", "--threads", "1", "--warmup", "0", "--tables-dir", str(tables)]
    assert main(argv) == 0
    assert "share of the profiled forward time" in capsys.readouterr().out
    written = pd.read_csv(tables / "profile.csv")
    assert list(written.columns) == list(PROFILE_COLUMNS)
    assert written["label"].unique().tolist() == ["dense", "ts-dtp k=0 g=0.5"]
    assert (written["batch_size"] == 4).all() and (written["run_dir"] == str(run_dir)).all()
    assert written.groupby("label")["share"].sum().to_numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert list(pd.read_csv(tables / "profile_layers.csv").columns) == list(LAYER_PROFILE_COLUMNS)


@pytest.mark.parametrize(("change", "message"), [
    (["--methods", "dense,magic"], "unknown method 'magic'"),
    (["--batch-sizes", "1,0"], "batch sizes must be positive"),
    (["--warmup", "-1"], "warmup must be >= 0"),
    (["--dtype", "int8"], "unknown dtype"),
])
def test_cli_rejects_bad_input_in_one_line(tmp_path, capsys, change, message):
    argv = ["profile", "--run-dir", str(tmp_path / "missing"), "--tables-dir", str(tmp_path), *change]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("tsdtp profile: error:") and message in error
    assert not (tmp_path / "profile.csv").exists()


def test_bad_settings_raise_config_errors(model, batch):
    with pytest.raises(ConfigError, match="batch sizes must be positive"):
        ProfileSettings(batch_sizes=(0,))
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        ProfileSettings(threads=0)
    with pytest.raises(ConfigError, match="no batches"):
        time_breakdown(model.adapter.dense_logits, [], torch.device("cpu"))
    with pytest.raises(ConfigError, match="warmup must be >= 0"):
        time_breakdown(model.adapter.dense_logits, [batch], torch.device("cpu"), warmup=-1)
