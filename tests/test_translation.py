"""Translation: a tiny Marian trained from scratch, pruning in the encoder, real removal in generate()."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import write_lines, write_wmt
from transformers import MarianMTModel
from transformers.modeling_outputs import BaseModelOutput

import tsdtp.translation.train as train_module
from tsdtp.analysis import frames
from tsdtp.cli.translation import add_translation_commands, run_translation_command
from tsdtp.core.config import K_MAX, PruningConfig
from tsdtp.core.pruned_model import special_token_ids
from tsdtp.data_files import tag_of_label
from tsdtp.errors import CheckpointError, ConfigError, DataError
from tsdtp.runs.cache import ensure_trained, run_finished
from tsdtp.runs.results import RESULT_COLUMNS
from tsdtp.runs.training_loop import seed_everything
from tsdtp.translation.checkpoint import load_translator
from tsdtp.translation.config import MTConfig, translation_pruning
from tsdtp.translation.data import ParallelCorpus, load_corpus
from tsdtp.translation.distill import Teacher
from tsdtp.translation.encoding import (
    EncodedPairs,
    collate_pairs,
    collate_sources,
    encode_corpus,
    encode_sources,
    token_batches,
)
from tsdtp.translation.model import cross_attention_mask
from tsdtp.translation.report import evaluate_translation, run_variant
from tsdtp.translation.train import train_translation


def tiny_config(**changes) -> MTConfig:
    base = dict(vocab_size=300, d_model=32, encoder_layers=3, decoder_layers=2, attention_heads=2, ffn_dim=64,
                epochs=3.0, max_tokens=400, lr=3e-3, warmup_ratio=0.05, val_samples=8, eval_batch_size=16,
                save_every=4, max_source_length=40, max_target_length=40)
    return MTConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def wmt_dir(glue_dir) -> Path:
    """The session's standard data folder, which holds `wmt16_en_de` too."""
    return glue_dir


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory, wmt_dir) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("mtruns") / "dense"
    return run_dir, train_translation(tiny_config(), run_dir, str(wmt_dir), progress=False)


@pytest.fixture()
def translator(dense_run):
    model, tokenizer, _, _ = load_translator(dense_run[0])
    return model, tokenizer


def source_batch(tokenizer, texts: list[str]) -> dict[str, torch.Tensor]:
    return collate_sources(encode_sources(tokenizer, texts, 40), tokenizer.pad_token_id)


SENTENCES = ["A dog is running near a red house.", "Two men is eating.", "A woman is sleeping on the beach."]


def test_a_few_steps_lower_the_loss_and_the_run_loads_like_a_hub_model(dense_run, wmt_dir, tmp_path):
    run_dir, metrics = dense_run
    history = metrics["history"]
    assert len(history) == 3 and history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["train_ce"] < 5.0
    model = MarianMTModel.from_pretrained(run_dir / "model")
    assert model.config.encoder_layers == 3 and (run_dir / "model" / "source.spm").is_file()
    config = tiny_config()
    seed_everything(config.seed)
    corpus = train_module.training_corpus(config, str(wmt_dir))
    fresh, tokenizer, _ = train_module.prepare_model(config, run_dir, corpus, tmp_path)
    assert list(tmp_path.iterdir()) == []  # the run's own tokenizer, not a new one
    trained, _, _, _ = load_translator(run_dir)
    pairs_ = encode_corpus(tokenizer, corpus, 40, 40)
    before = train_module.validation_loss(fresh, pairs_, config, tokenizer.pad_token_id, 2)
    after = train_module.validation_loss(trained, pairs_, config, tokenizer.pad_token_id, 2)
    assert after < before - 0.3


def test_pruning_off_reproduces_the_library_encoder_and_generate(translator):
    model, tokenizer = translator
    batch = source_batch(tokenizer, SENTENCES)
    valid = batch["attention_mask"].bool()
    for pruning in (PruningConfig(), PruningConfig(method="ts-dtp", k=K_MAX, d_task=model.pruning.d_task)):
        model.pruning = pruning
        with torch.no_grad():
            engine = model.encode(batch["input_ids"], batch["attention_mask"])
            dense = model.adapter.dense_encoder(batch["input_ids"], batch["attention_mask"])
        assert torch.allclose(engine.hidden[valid], dense[valid], atol=1e-5)
        pruned, _ = model.generate(batch["input_ids"], batch["attention_mask"], num_beams=3, max_new_tokens=20)
        reference = model.dense_generate(batch["input_ids"], batch["attention_mask"], num_beams=3, max_new_tokens=20)
        assert torch.equal(pruned, reference)


def test_beam_search_with_pruning_cross_attends_to_the_survivors_only(translator):
    model, tokenizer = translator
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, d_task=model.pruning.d_task)
    batch = source_batch(tokenizer, SENTENCES)
    sequences, engine = model.generate(batch["input_ids"], batch["attention_mask"], num_beams=4, max_new_tokens=20)
    lengths = batch["attention_mask"].sum(-1)
    assert (engine.valid.sum(-1) < lengths).all() and sequences.shape[0] == len(SENTENCES)
    # the same survivors left in place and masked out give the same beams: removal == masking
    full = torch.zeros(*batch["input_ids"].shape, engine.hidden.shape[-1])
    mask = torch.zeros_like(batch["attention_mask"])
    rows = torch.arange(len(SENTENCES))[:, None].expand_as(engine.positions)
    full[rows[engine.valid], engine.positions[engine.valid]] = engine.hidden[engine.valid]
    mask[rows[engine.valid], engine.positions[engine.valid]] = 1
    masked = model.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=full), attention_mask=mask,
                                  num_beams=4, max_length=21)
    assert torch.equal(sequences, masked)
    assert all(text.strip() for text in tokenizer.batch_decode(sequences, skip_special_tokens=True))


@pytest.mark.parametrize("pruning", [dict(method="ts-dtp", k=-3.0), dict(method="general-dtp-posthoc", k=-3.0,
                                                                         gamma=0.0),
                                     dict(method="topk", gamma=0.0, topk_final_keep=0.05)])
def test_the_end_of_sentence_token_survives_every_layer(translator, pruning):
    model, tokenizer = translator
    assert model.special_ids == special_token_ids(tokenizer) == [tokenizer.eos_token_id]
    model.pruning = PruningConfig(d_task=model.pruning.d_task, **pruning)
    batch = source_batch(tokenizer, SENTENCES)
    _, engine = model.generate(batch["input_ids"], batch["attention_mask"], num_beams=2, max_new_tokens=10,
                               record_trace=True)
    eos = batch["attention_mask"].sum(-1) - 1
    assert (batch["input_ids"][torch.arange(3), eos] == tokenizer.eos_token_id).all()
    assert engine.keep_trace[torch.arange(3), :, eos].all()
    survivors = torch.where(engine.valid, engine.positions, -1)
    assert (survivors == eos[:, None]).any(-1).all()
    assert (engine.valid.sum(-1) < batch["attention_mask"].sum(-1)).all()


def test_soft_training_reaches_the_scorers_through_the_cross_attention(translator, wmt_dir):
    model, tokenizer = translator
    model.pruning = PruningConfig(method="ts-dtp", k=0.5, d_task=model.pruning.d_task)
    corpus = load_corpus("multi30k-val", str(wmt_dir))
    pairs_ = encode_corpus(tokenizer, corpus, 40, 40)
    batch = collate_pairs(pairs_, list(range(len(pairs_))), tokenizer.pad_token_id, 2)
    model.train()
    output = model(batch)
    loss, parts = model.loss(output, batch["labels"], label_smoothing=0.1)
    loss.backward()
    assert output.engine.log_keep is not None and 0.0 < parts["soft_keep"] < 1.0
    assert all(model.scorers[i].weight.grad.abs().sum() > 0 for i in (0, 1))
    model.zero_grad(set_to_none=True)
    model.eval()


def test_the_hard_phase_trains_on_exactly_the_source_tokens_inference_keeps(translator, wmt_dir):
    model, tokenizer = translator
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, d_task=model.pruning.d_task)
    pairs_ = encode_corpus(tokenizer, load_corpus("multi30k-val", str(wmt_dir)), 40, 40)
    batch = collate_pairs(pairs_, list(range(len(pairs_))), tokenizer.pad_token_id, 2)
    with torch.no_grad():
        inference = model.encode(batch["input_ids"], batch["attention_mask"])
    kept = torch.zeros_like(batch["attention_mask"], dtype=torch.bool)
    kept.scatter_(1, inference.positions, inference.valid)
    assert kept.sum() < batch["attention_mask"].sum()
    model.train()
    model.model.eval()
    model.straight_through = True
    try:
        output = model(batch)
        loss, _ = model.loss(output, batch["labels"])
        loss.backward()
        visible = cross_attention_mask(output.engine)[:, 0, 0, :] == 0
        assert torch.equal(visible, kept)
        assert any(model.scorers[i].weight.grad.abs().sum() > 0 for i in (0, 1))
    finally:
        model.straight_through = False
        model.zero_grad(set_to_none=True)
        model.eval()
    with pytest.raises(ConfigError, match="hard_ratio"):
        tiny_config(hard_ratio=1.5)


def test_a_soft_mask_of_zero_in_cross_attention_equals_removing_the_token(translator):
    model, _ = translator
    hidden = torch.randn(2, 5, model.adapter.hidden_size)
    start = torch.full((2, 3), 2)
    log_keep = torch.zeros(2, 5)
    log_keep[:, 1] = torch.finfo(hidden.dtype).min
    with torch.no_grad():
        soft = model.model(encoder_outputs=(hidden,), attention_mask=log_keep[:, None, None, :],
                           decoder_input_ids=start).logits
        removed = model.model(encoder_outputs=(hidden[:, [0, 2, 3, 4]],), attention_mask=torch.ones(2, 4),
                              decoder_input_ids=start).logits
    assert torch.allclose(soft, removed, atol=1e-5)


def test_empty_and_over_long_sources_warn_and_still_translate(translator):
    model, tokenizer = translator
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, d_task=model.pruning.d_task)
    with pytest.warns(UserWarning, match="1 empty source"):
        ids = encode_sources(tokenizer, ["", "A dog is running."], 40)
    assert ids[0] == [tokenizer.eos_token_id]
    long_text = " ".join(["A man is running in the park."] * 20)
    with pytest.warns(UserWarning, match="longer than 40 tokens were truncated to 40"):
        long_ids = encode_sources(tokenizer, [long_text], 40)
    assert len(long_ids[0]) == 40 and long_ids[0][-1] == tokenizer.eos_token_id
    batch = collate_sources(ids + long_ids, tokenizer.pad_token_id)
    sequences, engine = model.generate(batch["input_ids"], batch["attention_mask"], num_beams=2, max_new_tokens=12)
    assert sequences.shape[0] == 3 and int(engine.valid[0].sum()) == 1


def test_missing_or_misaligned_data_files_name_the_path(wmt_dir, tmp_path):
    broken = tmp_path / "data"
    shutil.copytree(wmt_dir, broken)
    missing = broken / "wmt16_en_de" / "multi30k_task1" / "val.de.gz"
    missing.unlink()
    with pytest.raises(DataError, match=str(missing)):
        load_corpus("multi30k-val", str(broken))
    write_lines(broken / "wmt16_en_de" / "newstest" / "newstest2016.de", ["ein Satz"], False)
    with pytest.raises(DataError, match="expected line-aligned files"):
        load_corpus("newstest2016", str(broken))
    with pytest.raises(DataError, match="no translation data under"):
        load_corpus("multi30k", str(tmp_path / "nowhere"))


def test_token_batches_respect_the_budget_and_cover_every_pair():
    sources, targets = [3, 9, 4, 30, 7, 7, 12], [5, 8, 4, 25, 9, 6, 14]
    batches = token_batches(sources, targets, max_tokens=30, shuffle=True, seed=3)
    assert sorted(i for batch in batches for i in batch) == list(range(7))
    assert all(len(b) * max(max(sources[i], targets[i]) for i in b) <= 30 for b in batches)


def test_a_fractional_epoch_count_runs_the_rounded_fraction_of_the_last_epoch():
    lengths = [3 + (7 * i) % 40 for i in range(60)]
    pairs = EncodedPairs([[0] * n for n in lengths], [[0] * n for n in reversed(lengths)],
                         ParallelCorpus("c", "c", "d", [""] * 60, [""] * 60))
    plan = train_module.epoch_plan(pairs, MTConfig(epochs=1.25, max_tokens=100, max_source_length=64,
                                                       max_target_length=64))
    full = token_batches(pairs.source_lengths(), pairs.target_lengths(), 100, shuffle=True, seed=1)
    assert plan[1] == full[: max(1, round(0.25 * len(full)))] and plan[0] != plan[1]


def test_evaluation_writes_bleu_rows_per_domain_traces_and_the_wide_table(dense_run, wmt_dir, tmp_path):
    run_dir, _ = dense_run
    results = tmp_path / "results.csv"
    record = evaluate_translation(run_dir, str(wmt_dir), {"method": "topk", "gamma": 0.0}, results, batch_size=8,
                                  num_beams=2, speed_repeats=1, speed_samples=6, latency_samples=2, progress=False)
    assert record["speed"]["speedup"] > 0 and record["speed"]["latency_ms"] > 0
    table = pd.read_csv(results)
    assert table.speedup.notna().sum() == 1
    assert list(table.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert set(table.metric_name) == {"bleu"} and set(table.method) == {"topk"}
    assert set(table.eval_split) == {"multi30k test_2016_flickr (captions)", "newstest2016 (news)"}
    assert (table.flops_ratio < 1.0).all() and (table.keep_ratio < 1.0).all()
    wide = pd.read_csv(tmp_path / "translation.csv")
    assert {"chrf", "tokens_kept", "cross_keep_ratio", "latency_ms", "throughput"} <= set(wide.columns)
    traces = pd.read_parquet(run_dir / "eval" / "topk_k1_g0.parquet")
    assert {"example", "layer", "position", "token", "kept", "eval_split"} <= set(traces.columns)
    assert traces[traces.token == "</s>"].kept.all()
    decoder_view = traces[traces.layer == 3]
    assert 0 < decoder_view.kept.mean() < 1
    assert (run_dir / "eval" / "topk_k1_g0.multi30k-test2016.txt").is_file()
    with pytest.raises(ConfigError, match="not available for translation"):
        evaluate_translation(run_dir, str(wmt_dir), {"method": "reference-masking"}, None, progress=False)


def test_pruning_fine_tune_from_the_dense_run_and_resume_after_an_interruption(dense_run, wmt_dir, tmp_path,
                                                                               monkeypatch, interrupt_on_call):
    config = tiny_config(epochs=1.0, init_from=str(dense_run[0]), lr=1e-3, hard_ratio=0.5,
                         pruning=PruningConfig(method="ts-dtp", k=0.5, d_task=16, keep_target=0.6))
    real = interrupt_on_call(train_module, "collate_pairs", 6)
    with pytest.raises(KeyboardInterrupt):
        train_translation(config, tmp_path, str(wmt_dir), progress=False)
    assert torch.load(tmp_path / "state.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(train_module, "collate_pairs", real)
    metrics = train_translation(config, tmp_path, str(wmt_dir), progress=False)
    assert metrics["steps"] == metrics["total_steps"] and metrics["model"] == "marian-scratch-e3d2-32"
    assert metrics["final"]["val_keep_ratio"] < 1.0
    translator, _, _, _ = load_translator(tmp_path)
    assert translator.pruning.method == "ts-dtp" and translator.pruning.prune_layers == (1, 2)
    with pytest.raises(CheckpointError, match="different config"):
        train_translation(tiny_config(epochs=2.0, init_from=str(dense_run[0])), tmp_path, str(wmt_dir),
                          progress=False)


def refuse_training(monkeypatch) -> None:
    """Make any training step fail, to show that a call trains nothing."""
    def refuse(*args, **kwargs):
        raise AssertionError("trained a step")

    monkeypatch.setattr(train_module, "collate_pairs", refuse)


def test_a_finished_run_keeps_no_state_and_the_advice_for_corrupt_scorers_works(wmt_dir, tmp_path, monkeypatch):
    run_dir, config = tmp_path / "run", tiny_config(epochs=1.0)
    metrics = train_translation(config, run_dir, str(wmt_dir), progress=False)
    assert sorted(path.name for path in run_dir.iterdir()) == ["config.json", "data.json", "metrics.json", "model",
                                                               "scorers.pt", "tokenizer", "train_log.jsonl"]
    assert run_finished(run_dir)
    with monkeypatch.context() as patch:
        refuse_training(patch)
        assert train_translation(config, run_dir, str(wmt_dir), progress=False) == metrics
    (run_dir / "scorers.pt").write_bytes(b"half a file")
    with pytest.raises(CheckpointError) as error:
        evaluate_translation(run_dir, str(wmt_dir), num_beams=1, progress=False)
    told = str(error.value).rsplit(";", 1)[1].strip()
    assert told.startswith("delete it, then run the same `tsdtp mt-train` command again")
    (run_dir / "scorers.pt").unlink()
    assert train_translation(config, run_dir, str(wmt_dir), progress=False)["steps"] == metrics["steps"]
    assert evaluate_translation(run_dir, str(wmt_dir), num_beams=1, progress=False)["splits"]


def test_a_run_kept_with_its_state_saves_a_lost_model_again_without_training(wmt_dir, tmp_path, monkeypatch):
    run_dir, config = tmp_path / "run", tiny_config(epochs=1.0)
    train_translation(config, run_dir, str(wmt_dir), progress=False, keep_state=True)
    assert (run_dir / "state.pt").is_file()
    shutil.rmtree(run_dir / "model")
    with pytest.raises(CheckpointError, match="to finish the run or save it again, run the same `tsdtp mt-train`"):
        evaluate_translation(run_dir, str(wmt_dir), num_beams=1, progress=False)
    refuse_training(monkeypatch)
    train_translation(config, run_dir, str(wmt_dir), progress=False, keep_state=True)
    assert evaluate_translation(run_dir, str(wmt_dir), num_beams=1, progress=False)["splits"]


def test_cli_commands_parse_into_configs_and_report_bad_input(tmp_path):
    parser = argparse.ArgumentParser(prog="tsdtp")
    add_translation_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mt-train", "--run-dir", str(tmp_path), "--method", "ts-dtp", "--k", "0.5",
                              "--init-from", "runs/mt-dense", "--epochs", "3"])
    assert args.d_task == 32 and args.keep_target == 0.65 and args.epochs == 3.0
    with pytest.raises(ConfigError, match="fine-tuned from a trained model"):
        run_translation_command(parser.parse_args(["mt-train", "--run-dir", str(tmp_path), "--method", "ts-dtp"]))
    with pytest.raises(CheckpointError, match="no translation run"):
        run_translation_command(parser.parse_args(["mt-eval", "--run-dir", str(tmp_path / "missing")]))
    saved = json.loads(json.dumps(tiny_config().to_dict()))
    assert MTConfig.from_dict(saved) == tiny_config()


def test_evaluation_on_other_data_is_labelled_and_filed_apart(dense_run, tmp_path):
    run_dir, _ = dense_run
    results = tmp_path / "results.csv"
    record = evaluate_translation(run_dir, str(write_wmt(tmp_path / "other")), {"method": "topk", "gamma": 0.0},
                                  results, batch_size=8, num_beams=1, max_eval_samples=3, trace_samples=3,
                                  progress=False)
    labels = {figures["eval_split"] for figures in record["splits"].values()}
    tag = tag_of_label(next(iter(labels)))
    assert tag is not None and tag.name == "other"
    assert labels == {tag.label("multi30k test_2016_flickr (captions)"), tag.label("newstest2016 (news)")}
    stem = f"topk_k1_g0_data-{tag.digest}"
    assert {path.name for path in (run_dir / "eval").glob(f"{stem}.*")} == {
        f"{stem}.json", f"{stem}.parquet", f"{stem}.multi30k-test2016.txt", f"{stem}.newstest2016.txt"}
    table = pd.read_csv(results)
    assert set(table.eval_split) == labels
    assert frames.trace_path(table.iloc[0]).name == f"{stem}.parquet"


def test_a_finished_translation_run_is_not_rerun_on_other_data(dense_run, wmt_dir, tmp_path):
    run_dir, metrics = dense_run
    recorded = json.loads((run_dir / "data.json").read_text())
    assert {"multi30k_task1/train.en.gz", "multi30k_task1/val.de.gz"} <= {f["path"] for f in recorded["files"]}
    other = tmp_path / "other"
    shutil.copytree(wmt_dir / "wmt16_en_de", other / "wmt16_en_de")
    assert ensure_trained(tiny_config(), run_dir, str(other), progress=False) == (metrics, False)
    train = load_corpus("multi30k", str(wmt_dir))
    write_lines(other / "wmt16_en_de" / "multi30k_task1" / "train.en.gz", train.sources[:10], True)
    write_lines(other / "wmt16_en_de" / "multi30k_task1" / "train.de.gz", train.targets[:10], True)
    with pytest.raises(CheckpointError, match=f"was trained on {re.escape(str(wmt_dir.resolve()))} "):
        train_translation(tiny_config(), run_dir, str(other), progress=False)
    with pytest.raises(CheckpointError, match=f"not on {re.escape(str(other.resolve()))} "):
        ensure_trained(tiny_config(), run_dir, str(other), progress=False)


def test_the_variant_names_the_resolved_pruning_layers_and_distillation():
    pruning = translation_pruning(PruningConfig(method="ts-dtp", k=0.5, exit_mode="exit"), 6)
    config = MTConfig(pruning=pruning, distill_weight=0.5, init_from="runs/dense")
    assert run_variant(config, pruning) == "exit after 1,2,3,4,5; kd 0.5"
    assert run_variant(config, PruningConfig(method="ts-dtp")) == "delete after 1,2,3,4; trained exit; kd 0.5"
    gate = pruning.with_overrides({"prune_layers": (2,)})
    assert run_variant(config, gate) == "exit after 2; kd 0.5"
    assert run_variant(config, gate.with_overrides({"exit_mode": "delete"})) == "delete after 2; trained exit; kd 0.5"
    assert run_variant(MTConfig(), PruningConfig()) == ""


def test_an_exit_evaluation_reads_every_source_token_and_times_the_encoder(dense_run, wmt_dir, tmp_path):
    run_dir, _ = dense_run
    results = tmp_path / "results.csv"
    override = {"method": "general-dtp-posthoc", "k": 0.0, "exit_mode": "exit"}
    record = evaluate_translation(run_dir, str(wmt_dir), override, results, splits=("multi30k-test2016",),
                                  batch_size=8, num_beams=2, speed_repeats=1, speed_samples=8, latency_samples=2,
                                  progress=False)
    figures = record["splits"]["multi30k-test2016"]
    assert figures["cross_keep_ratio"] == figures["cross_flops_ratio"] == 1.0 and figures["flops_ratio"] < 1.0
    assert figures["cross_gflops"] > 0 and figures["target_tokens"] > 0
    speed = record["speed"]
    assert speed["encoder_baseline"] in ("hf_sorted", "engine_sorted") and speed["encoder_speedup_b1"] > 0
    assert speed["encoder_realization"] == pytest.approx(speed["encoder_speedup"] * speed["encoder_flops_ratio"])
    wide = pd.read_csv(tmp_path / "translation.csv")
    assert wide.variant.iloc[0] == "exit after 1,2; trained delete" and wide.exit_mode.iloc[0] == "exit"
    deleted = evaluate_translation(run_dir, str(wmt_dir), {**override, "exit_mode": "delete"}, results,
                                   splits=("multi30k-test2016",), batch_size=8, num_beams=2, progress=False)
    assert deleted["splits"]["multi30k-test2016"]["cross_flops_ratio"] < 1.0
    assert len(pd.read_csv(results)) == 2  # told apart by their variant


def test_mt_compare_gives_the_paired_bootstrap_of_two_evaluations(dense_run, wmt_dir, tmp_path, capsys):
    run_dir, _ = dense_run
    for override in ({}, {"method": "topk", "gamma": 0.0}):
        evaluate_translation(run_dir, str(wmt_dir), override, None, splits=("multi30k-test2016",), num_beams=1,
                             progress=False)
    parser = argparse.ArgumentParser(prog="tsdtp")
    add_translation_commands(parser.add_subparsers(dest="command"))
    topk = run_dir / "eval" / "topk_k1_g0.multi30k-test2016.txt"
    assert run_translation_command(parser.parse_args(["mt-compare", str(run_dir), str(topk), "--data-dir",
                                                      str(wmt_dir), "--samples", "50"])) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["b"] == str(topk) and compared["a"].endswith("none_k1_g0.multi30k-test2016.txt")
    assert compared["bleu_diff_low"] <= compared["bleu_diff"] <= compared["bleu_diff_high"]
    with pytest.raises(DataError, match="no hypotheses at"):
        run_translation_command(parser.parse_args(["mt-compare", str(topk), str(tmp_path / "missing.txt")]))


def test_distillation_trains_toward_a_dense_teacher_and_refuses_other_teachers(dense_run, wmt_dir, tmp_path):
    run_dir, _ = dense_run
    config = tiny_config(epochs=0.5, init_from=str(run_dir), hard_ratio=0.5, distill_weight=0.5,
                         pruning=PruningConfig(method="ts-dtp", k=0.5, d_task=16, exit_mode="exit"))
    metrics = train_translation(config, tmp_path / "kd", str(wmt_dir), progress=False)
    assert metrics["steps"] == metrics["total_steps"] and metrics["final"]["val_keep_ratio"] < 1.0
    teacher = Teacher.load(str(run_dir), metrics_vocab(run_dir))
    model, tokenizer, _, _ = load_translator(tmp_path / "kd")
    pairs_ = encode_corpus(tokenizer, load_corpus("multi30k-val", str(wmt_dir)), 40, 40)
    batch = collate_pairs(pairs_, list(range(len(pairs_))), tokenizer.pad_token_id, 2)
    model.train()
    loss, parts = train_module.distilled_step(model, model(batch), batch, teacher, config)
    loss.backward()
    model.eval()
    assert parts["kd"] > 0 and "ce" in parts and model.scorers[1].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="is a ts-dtp run; distil from a dense"):
        Teacher.load(str(tmp_path / "kd"), metrics_vocab(run_dir))
    with pytest.raises(ConfigError, match="vocabulary of"):
        Teacher.load(str(run_dir), 7)
    with pytest.raises(ConfigError, match="needs a teacher"):
        tiny_config(distill_weight=0.5)


def metrics_vocab(run_dir: Path) -> int:
    return MarianMTModel.from_pretrained(run_dir / "model").config.vocab_size
