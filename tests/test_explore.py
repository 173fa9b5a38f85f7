"""The explorer's analysis of one input: keep grid, prediction, FLOPs, runs and loading errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tsdtp.classification.checkpoint import save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, encode_texts
from tsdtp.classification.evaluate import evaluate_model
from tsdtp.core.config import PruningConfig
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.explorer.session import (
    LoadedModel,
    analyse,
    load_run,
    pruning_for,
    scan_runs,
)

SENTENCE = "a gorgeous , witty , seductive movie that nobody should miss ."


@pytest.fixture()
def loaded(model, tokenizer) -> LoadedModel:
    """The session model as the explorer sees the default model."""
    return LoadedModel(model, tokenizer, "test model", ("negative", "positive"), ("sentence",), 128, trained=True)


@pytest.mark.parametrize("method", ["ts-dtp", "general-dtp", "general-dtp-posthoc", "topk", "random"])
def test_removal_methods_give_a_consistent_grid(loaded, method):
    analysis = analyse(loaded, [SENTENCE], pruning_for(PruningConfig(), method, 0.5, 0.5))
    assert analysis.tokens[0] == "[CLS]" and analysis.tokens[-1] == "[SEP]"
    assert analysis.num_layers == 6 and all(len(row) == len(analysis.tokens) for row in analysis.keep)
    assert all(analysis.keep[0])
    for earlier, later in zip(analysis.keep, analysis.keep[1:]):
        assert all(before or not after for before, after in zip(earlier, later)), "a removed token came back"
    assert all(analysis.keep[-1][j] for j, special in enumerate(analysis.special) if special)
    assert analysis.tokens_per_layer == tuple(sum(row) for row in analysis.keep)
    assert analysis.final_tokens < len(analysis.tokens)
    assert abs(sum(analysis.probs) - 1) < 1e-6 and analysis.label in ("negative", "positive")
    assert 0 < analysis.flops_ratio < 1 and analysis.flops_saved == pytest.approx(1 - analysis.flops_ratio)


def test_matches_evaluate_model_on_the_same_example(loaded, tokenizer):
    pruning = pruning_for(PruningConfig(), "ts-dtp", 0.5, 0.5)
    analysis = analyse(loaded, [SENTENCE], pruning)
    ids, types = encode_texts(tokenizer, [(SENTENCE,)], 128)
    loaded.model.pruning = pruning
    result, _ = evaluate_model(loaded.model, EncodedSplit(ids, types, [analysis.prediction], [(SENTENCE,)]), 1,
                               tokenizer.pad_token_id, progress=False)
    assert result.accuracy == 1.0
    assert result.flops_ratio == pytest.approx(analysis.flops_ratio)
    assert result.keep_ratio == pytest.approx(analysis.keep_ratio)


def test_no_pruning_keeps_everything_and_restores_the_model_setting(loaded):
    loaded.model.pruning = PruningConfig(method="topk")
    analysis = analyse(loaded, [SENTENCE], pruning_for(PruningConfig(), "none", 1.0, 0.5))
    assert analysis.kept_cells == len(analysis.tokens) * analysis.num_layers
    assert analysis.flops_ratio == pytest.approx(1.0) and analysis.keep_ratio == 1.0
    assert loaded.model.pruning == PruningConfig(method="topk")


def test_reference_masking_costs_two_passes(loaded):
    analysis = analyse(loaded, [SENTENCE], pruning_for(PruningConfig(), "reference-masking", 0.0, 0.5))
    assert analysis.flops_ratio > 2.0 and analysis.flops_saved < 0
    assert analysis.keep_ratio == 1.0 and analysis.kept_cells < len(analysis.tokens) * analysis.num_layers
    assert any("two full passes" in note for note in analysis.notes)


def test_smaller_k_prunes_more(loaded):
    wide = analyse(loaded, [SENTENCE], pruning_for(PruningConfig(), "ts-dtp", 2.0, 0.5))
    narrow = analyse(loaded, [SENTENCE], pruning_for(PruningConfig(), "ts-dtp", -1.0, 0.5))
    assert narrow.kept_cells < wide.kept_cells and narrow.flops_ratio < wide.flops_ratio


def test_pairs_blank_second_text_and_empty_input(loaded):
    pair = analyse(loaded, ["who made it?", "the studio made it."], PruningConfig())
    assert pair.tokens.count("[SEP]") == 2
    single = analyse(loaded, [SENTENCE, "   "], PruningConfig())
    assert single.tokens.count("[SEP]") == 1
    for texts in ([""], ["  \n "], []):
        with pytest.raises(ConfigError, match="empty"):
            analyse(loaded, texts, PruningConfig())


def test_truncation_becomes_a_note(loaded):
    analysis = analyse(loaded, [" ".join(["word"] * 300)], PruningConfig())
    assert len(analysis.tokens) == 128
    assert any("truncated" in note for note in analysis.notes)


def test_pair_task_with_one_text_is_noted(loaded):
    pair_task = LoadedModel(loaded.model, loaded.tokenizer, "qnli", ("entailment", "not_entailment"),
                            ("question", "sentence"), 256, trained=True)
    assert any("reads a pair" in note for note in analyse(pair_task, [SENTENCE], PruningConfig()).notes)


def test_pruning_for_gives_gamma_only_to_scorer_methods():
    base = PruningConfig(method="ts-dtp", d_task=64)
    assert pruning_for(base, "general-dtp", 0.5, 0.7) == base.replace(method="general-dtp", k=0.5, gamma=0.0)
    assert pruning_for(base, "ts-dtp", 0.5, 0.7).gamma == 0.7
    assert pruning_for(base, "topk", 0.5, 0.7).d_task == 64


def test_scan_runs_lists_folders_with_a_checkpoint_but_not_llm_or_translation_runs(tmp_path: Path):
    (tmp_path / "b-run").mkdir()
    (tmp_path / "b-run" / "checkpoint.pt").write_bytes(b"x")
    (tmp_path / "b-run" / "config.json").write_text('{"task": "sst2", "pruning": {"method": "ts-dtp", "k": 1.0}}')
    (tmp_path / "a-run").mkdir()
    (tmp_path / "a-run" / "checkpoint.pt").write_bytes(b"x")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "state.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a run")
    for name, config in (("c-llm", {"task": "sst2", "lora_rank": 8}), ("d-mt", {"task": "wmt16", "exit_mode": "exit"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.pt").write_bytes(b"x")
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    entries = scan_runs(tmp_path)
    assert [entry.path.name for entry in entries] == ["a-run", "b-run"]
    assert entries[0].label == "a-run" and entries[1].label == "b-run · sst2 · ts-dtp k=1.0"
    assert scan_runs(tmp_path / "missing") == []


def test_load_run_reads_a_checkpoint_and_reports_bad_ones(tmp_path: Path, model):
    save_checkpoint(tmp_path / "good", model, TrainConfig(task="sst2"))
    loaded = load_run(tmp_path / "good")
    assert loaded.label_names == ("negative", "positive") and loaded.text_fields == ("sentence",)
    assert loaded.trained and loaded.max_length == 128 and "good" in loaded.title
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "checkpoint.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(tmp_path / "corrupt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "missing")
