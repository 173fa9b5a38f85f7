"""Decoder-only classification: prompts (frame kept, long text cut, empty text refused), the label-word head,
LoRA training through the pruning engine, checkpoints holding only what trains, evaluation rows, bad inputs.

A tiny random Llama saved with the packaged MiniLM tokenizer (no chat template: the plain prompt frame) keeps
these fast and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import LlamaForCausalLM

from tsdtp.cli import main
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineMode
from tsdtp.core.flops import counted_flops, layer_flops
from tsdtp.core.scoring import LayerRequest
from tsdtp.data_files import DATA_DIR_VARIABLE
from tsdtp.errors import CheckpointError, ConfigError, DataError
from tsdtp.hub import load_tokenizer
from tsdtp.llm import classifier_teacher
from tsdtp.llm.classifier_causal import classifier_causal_lm
from tsdtp.llm.classifier_checkpoint import load_checkpoint
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_evaluate import evaluate_llm_run
from tsdtp.llm.classifier_model import PrunedLlamaClassifier, llama_shape, sequence_classifier
from tsdtp.llm.classifier_prompts import (
    PROMPTS,
    PromptFrame,
    PromptSplit,
    collate,
    encode_prompts,
    label_token_ids,
    prepare_splits,
)
from tsdtp.llm.classifier_speed import classifier_speed
from tsdtp.llm.classifier_train import train_llm, training_loss
from tsdtp.llm.experiments import llm_config
from tsdtp.llm.prefill import prefill
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prompts import label_token_ids as few_shot_label_ids
from tsdtp.runs.cache import run_cache_dir
from tsdtp.runs.eval_files import training_variant
from tsdtp.runs.results import RESULT_COLUMNS
from tsdtp.runs.training_loop import seed_everything

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [("a gorgeous , witty , seductive movie . ",), ("an ugly , pointless mess ",)]


def tiny_config(folder: Path, **changes: object) -> LlmTrainConfig:
    return LlmTrainConfig(model=str(folder), max_length=48, batch_size=8, eval_batch_size=4, **changes)


def test_a_prompt_keeps_its_frame_and_cuts_a_long_text_at_its_end(tiny_llama: Path):
    tokenizer = load_tokenizer(str(tiny_llama))
    frame = PromptFrame.of(tokenizer, PROMPTS["sst2"])
    long_text = ("warm , funny and wise " * 20,)
    with pytest.warns(UserWarning, match="1 sst2 text"):
        (short, cut), truncated = encode_prompts(tokenizer, "sst2", [TEXTS[0], long_text], 40)
    assert truncated == [False, True] and len(cut) == 40
    for ids in (short, cut):
        assert ids[: len(frame.before)] == frame.before and ids[-len(frame.after):] == frame.after
    assert "gorgeous" in tokenizer.decode(short) and "wise" in tokenizer.decode(cut)


def test_empty_text_and_a_frame_longer_than_the_limit_are_clear_errors(tiny_llama: Path):
    tokenizer = load_tokenizer(str(tiny_llama))
    with pytest.raises(DataError, match="1 empty sst2 text"):
        encode_prompts(tokenizer, "sst2", [TEXTS[0], ("   ",)], 40)
    with pytest.raises(ConfigError, match="max_length 16 leaves no room for the text"):
        encode_prompts(tokenizer, "sst2", TEXTS, 16)


def test_a_limit_over_the_context_and_an_unknown_model_are_refused(tiny_llama: Path, capsys: pytest.CaptureFixture):
    with pytest.raises(ConfigError, match="max_length 128 exceeds the context of .* \\(64 tokens\\)"):
        PrunedLlamaClassifier.build(tiny_config(tiny_llama).replace(max_length=128))
    with pytest.raises(ConfigError, match="cannot load model 'no-owner/no-such-llm'"):
        PrunedLlamaClassifier.build(LlmTrainConfig(model="no-owner/no-such-llm"))
    assert main(["llm-train", "--model", "no-owner/no-such-llm", "--run-dir", "unused"]) == 2
    assert "tsdtp llm-train: error: cannot load model 'no-owner/no-such-llm'" in capsys.readouterr().err
    assert not Path("unused").exists()


def test_the_untrained_head_reads_the_label_words_at_the_last_token(tiny_llama: Path):
    model, tokenizer = PrunedLlamaClassifier.build(tiny_config(tiny_llama))
    ids, _ = encode_prompts(tokenizer, "sst2", TEXTS, 48)
    batch = collate_ids(ids, tokenizer.pad_token_id)
    causal = LlamaForCausalLM.from_pretrained(tiny_llama).eval()
    with torch.no_grad():
        logits = model.eval()(batch).logits
        last = batch["attention_mask"].sum(-1) - 1
        reference = causal(**batch).logits[torch.arange(2), last][:, label_token_ids(tokenizer, "sst2")]
    assert torch.allclose(logits, reference, atol=1e-5)


def collate_ids(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(map(len, ids))
    return {"input_ids": torch.tensor([row + [pad_id] * (width - len(row)) for row in ids]),
            "attention_mask": torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])}


def test_gradients_reach_the_lora_adapters_head_and_scorers_and_nothing_else(tiny_llama: Path):
    model, tokenizer = PrunedLlamaClassifier.build(tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp",
                                                                                                  k=0.0)))
    ids, _ = encode_prompts(tokenizer, "sst2", TEXTS, 48)
    batch = collate_ids(ids, tokenizer.pad_token_id)
    model.train()
    assert model.engine_mode() is EngineMode.SOFT
    loss, _ = model.loss(model(batch), torch.tensor([1, 0]))
    loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any("lora_B" in name for name in grads) and "model.score.weight" in grads
    assert any(name.startswith("scorers.1.") for name in grads)
    assert grads <= model.trained_names
    assert not any("embed_tokens" in name or "mlp" in name for name in model.trained_names)


def test_two_processes_under_torchrun_train_the_adapters_one_process_trains(tiny_llama: Path, tmp_path: Path,
                                                                           glue_dir: Path):
    config = tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.5), max_train_samples=16, epochs=2.0,
                         max_eval_samples=8)
    one = train_llm(config, tmp_path / "one", progress=False)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "tsdtp.cli", "--threads", "1", "llm-train", "--model", str(tiny_llama), "--max-length", "48",
               "--batch-size", "8", "--eval-batch-size", "4", "--max-train-samples", "16", "--epochs", "2",
               "--max-eval-samples", "8", "--method", "ts-dtp", "--k", "0.5", "--data-dir", str(glue_dir),
               "--run-dir", str(tmp_path / "two")]
    launched = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert launched.returncode == 0, launched.stderr[-4000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["data_parallel"] == {"processes": 2, "grad_accum": 1} and two["steps"] == one["steps"] == 4
    assert {key: two["final"][key] for key in ("accuracy", "keep_ratio", "layer_keep")} == {
        key: one["final"][key] for key in ("accuracy", "keep_ratio", "layer_keep")}
    trained, _, _ = load_checkpoint(tmp_path / "one")
    seed_everything(config.seed)
    initial = dict(PrunedLlamaClassifier.build(config)[0].named_parameters())
    expected, shared = dict(trained.named_parameters()), dict(load_checkpoint(tmp_path / "two")[0].named_parameters())
    difference = sum(float((shared[name] - expected[name]).detach().pow(2).sum()) for name in trained.trained_names)
    update = sum(float((expected[name] - initial[name]).detach().pow(2).sum()) for name in trained.trained_names)
    assert update > 0 and (difference / update) ** 0.5 < 0.01


def test_training_evaluation_and_checkpoints(tiny_llama: Path, tmp_path: Path):
    config = tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.0), max_eval_samples=6)
    metrics = train_llm(config, tmp_path / "run", progress=False)
    assert metrics["steps"] == 4 and metrics["train_examples"] == 32 and 0.0 < metrics["final"]["keep_ratio"] < 1.0
    payload = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    model, tokenizer, loaded = load_checkpoint(tmp_path / "run")
    assert loaded == config and set(payload["state_dict"]) == model.trained_names
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in payload["state_dict"].items())
    base = LlamaForCausalLM.from_pretrained(tiny_llama)
    assert torch.equal(model.model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    assert train_llm(config, tmp_path / "run", progress=False) == metrics, "a finished run is not trained again"

    results = tmp_path / "results.csv"
    record = evaluate_llm_run(tmp_path / "run", overrides={"k": 1e6}, results_csv=results, progress=False)
    assert record["keep_ratio"] == 1.0 and record["flops_ratio"] == 1.0 and record["n_eval"] == 6
    row = pd.read_csv(results).iloc[0]
    assert list(pd.read_csv(results).columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert row["model"] == f"{tiny_llama.name} LoRA r8" and row["task"] == "sst2"
    assert row["metric"] == round(100 * record["accuracy"], 2)
    assert json.loads((tmp_path / "run" / "eval" / "ts-dtp_k1e+06_g0.5.json").read_text())["n_eval"] == 6

    pruned = evaluate_llm_run(tmp_path / "run", progress=False)
    trace = pd.read_parquet(tmp_path / "run" / "eval" / "ts-dtp_k0_g0.5.parquet")
    _, split, _ = prepare_splits(config, tokenizer, None, include_train=False)
    layers = model.adapter.num_layers
    assert len(trace) == layers * sum(split.lengths()) and set(trace["task"]) == {"sst2"}
    last = trace.groupby("example")["position"].transform("max") == trace["position"]
    assert trace.loc[last, "kept"].all(), "the token the label is read at survives every layer"
    per_example = trace.groupby("example")["correct"].first()
    assert per_example.mean() == pytest.approx(pruned["accuracy"])
    alive = trace.groupby("layer")["kept"].sum() / trace.groupby("layer").size()
    assert alive.mean() == pytest.approx(pruned["keep_ratio"], abs=1e-4) and alive.min() < 1.0

    timed = evaluate_llm_run(tmp_path / "run", results_csv=results, progress=False, speed_repeats=2,
                             speed_samples=5)
    speed = timed["speed"]
    assert speed["speedup_baseline"] in ("hf_sorted", "engine_sorted") and speed["speed_prompts"] == 5
    assert speed["realization"] == pytest.approx(speed["speedup"] * speed["flops_ratio"])
    assert speed["flops_speedup"] == pytest.approx(1 / speed["flops_ratio"])
    assert min(speed[f"{name}_seconds"] for name in ("hf_sorted", "engine_sorted", "pruned")) > 0
    row = pd.read_csv(results).set_index("k").loc[0.0]
    assert row["speedup"] == round(speed["speedup"], 3) and row["speedup_baseline"] == speed["speedup_baseline"]
    with pytest.raises(ConfigError, match="at least one repeat and one prompt"):
        classifier_speed(model, split, 4, tokenizer.pad_token_id, repeats=0)


def test_an_llm_run_holds_out_a_selection_split_and_is_evaluated_on_it(tiny_llama: Path, unique_data: Path,
                                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(unique_data))  # the standard data: plain labels and file names
    config = tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.5), selection_fraction=0.2,
                         max_train_samples=16, seed=2)
    tokenizer = load_tokenizer(str(tiny_llama))
    trained, selection, label = prepare_splits(config, tokenizer, None, split="selection")
    evaluation = prepare_splits(config, tokenizer, None, include_train=False)[1]
    assert trained is not None and len(trained) == 16 and len(selection) == 10 and label == "sst2 train selection 20%"
    prompts = [{tuple(ids) for ids in split.input_ids} for split in (trained, selection, evaluation)]
    assert not prompts[0] & prompts[1] and not prompts[1] & prompts[2]
    again = prepare_splits(replace(config, seed=3), tokenizer, None, include_train=False, split="selection")[1]
    assert again.input_ids == selection.input_ids  # the same held-out examples, whatever the run's seed

    run_dir = tmp_path / "run"
    train_llm(config, run_dir, progress=False)
    results = tmp_path / "results.csv"
    assert main(["llm-eval", "--run-dir", str(run_dir), "--results", str(results), "--split", "selection"]) == 0
    assert json.loads(capsys.readouterr().out)["n_eval"] == 10
    assert sorted(path.name for path in (run_dir / "eval").iterdir()) == [
        "ts-dtp_k0.5_g0.5_selection.json", "ts-dtp_k0.5_g0.5_selection.parquet"]
    assert pd.read_csv(results)["eval_split"].tolist() == ["sst2 train selection 20%"]
    with pytest.raises(ConfigError, match="holds out no selection split"):
        prepare_splits(replace(config, selection_fraction=0.0), tokenizer, None, include_train=False,
                       split="selection")


def test_collate_pads_on_the_right(tiny_llama: Path):
    tokenizer = load_tokenizer(str(tiny_llama))
    ids, _ = encode_prompts(tokenizer, "qnli", [("Who?", "Nobody knows."), ("What?", "A thing , perhaps .")], 48)
    batch = collate(PromptSplit(ids, [0, 1], [], [False, False]), [0, 1], tokenizer.pad_token_id)
    assert batch["attention_mask"].sum(-1).tolist() == [len(row) for row in ids]
    assert batch["input_ids"][0, len(ids[0]):].eq(tokenizer.pad_token_id).all()


@pytest.mark.parametrize("length", [5, 12])
def test_analytic_flops_of_a_llama_layer_match_the_flop_counter(tiny_llama: Path, length: int):
    """Without LoRA adapters (they add their own small matmuls, to dense and pruned alike, until merged)."""
    causal = LlamaForCausalLM.from_pretrained(tiny_llama)
    model = PrunedLlamaClassifier(sequence_classifier(causal, [5, 6]), [101, 102], PruningConfig())
    hidden = torch.randn(1, length, model.adapter.hidden_size)
    with torch.no_grad():
        counted = counted_flops(lambda: model.eval().adapter.layer(0, hidden, LayerRequest(torch.zeros(1, length))))
    assert counted == layer_flops(torch.tensor([length]), llama_shape(model)).item()


def test_a_student_distils_the_dense_teachers_logits_computed_once(tiny_llama: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    teacher_dir = tmp_path / "teacher"
    train_llm(tiny_config(tiny_llama, max_eval_samples=4), teacher_dir, progress=False)
    student = tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.0), max_eval_samples=4,
                          init_from=str(teacher_dir), teacher=str(teacher_dir))
    train_llm(student, tmp_path / "student", progress=False)
    [cache] = (teacher_dir / "teacher_cache").glob("*.pt")
    cached = torch.load(cache, weights_only=True)["logits"]
    teacher, tokenizer, _ = load_checkpoint(teacher_dir)
    train_split, _, _ = prepare_splits(student, tokenizer, None)
    with torch.no_grad():
        expected = teacher(collate(train_split, [0, 5], tokenizer.pad_token_id)).logits
    torch.testing.assert_close(cached[[0, 5]], expected, atol=1e-5, rtol=1e-5)

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher ran again instead of reading its cache")

    monkeypatch.setattr(classifier_teacher, "teacher_pass", no_second_pass)
    train_llm(replace(student, seed=1), tmp_path / "student-seed1", progress=False)
    without_teacher = replace(student, teacher=None)
    train_llm(without_teacher, tmp_path / "no-teacher", progress=False)
    distilled, plain = (load_checkpoint(tmp_path / name)[0].state_dict() for name in ("student", "no-teacher"))
    assert any(not torch.equal(distilled[name], plain[name]) for name in distilled), "distillation changed nothing"


def test_distillation_loss_is_the_weighted_cross_entropy_when_the_teacher_agrees(tiny_llama: Path):
    config = tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.0), distill_weight=0.25)
    model, tokenizer = PrunedLlamaClassifier.build(config)
    ids, _ = encode_prompts(tokenizer, "sst2", TEXTS, 48)
    model.train()
    output = model(collate_ids(ids, tokenizer.pad_token_id))
    labels = torch.tensor([1, 0])
    loss, parts = training_loss(model, output, labels, config, output.logits.detach())
    plain, plain_parts = model.loss(output, labels)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-6) and parts["ce"] == pytest.approx(plain_parts["ce"])
    penalty = float(plain.detach()) - plain_parts["ce"]
    assert float(loss.detach()) == pytest.approx(0.75 * parts["ce"] + penalty, rel=1e-5)


def test_a_pruned_or_unfinished_teacher_is_refused_before_the_run_folder_exists(tiny_llama: Path, tmp_path: Path):
    pruned = tmp_path / "pruned"
    train_llm(tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.0), max_eval_samples=4), pruned,
              progress=False)
    for teacher, message in ((pruned, "expected a dense run"), (tmp_path / "missing", "not a finished LLM run")):
        with pytest.raises(CheckpointError, match=message):
            train_llm(tiny_config(tiny_llama, pruning=PruningConfig(method="ts-dtp", k=0.0), teacher=str(teacher)),
                      tmp_path / "student", progress=False)
        assert not (tmp_path / "student").exists()


def test_a_classification_run_as_a_causal_lm_answers_with_its_head(tiny_llama: Path, tmp_path: Path):
    train_llm(tiny_config(tiny_llama, max_eval_samples=4), tmp_path / "sst2", progress=False)
    causal, tokenizer = classifier_causal_lm(tmp_path / "sst2")
    classifier, _, _ = load_checkpoint(tmp_path / "sst2")
    ids = torch.tensor(tokenizer("a gorgeous , witty , seductive movie . sentiment :")["input_ids"])
    with torch.inference_mode():
        expected = classifier({"input_ids": ids[None], "attention_mask": torch.ones_like(ids)[None]}).logits[0]
        logits = prefill(causal, ids, PrefillPruning()).logits
    assert torch.allclose(logits[list(few_shot_label_ids(tokenizer))], expected, atol=1e-4)
    pretrained = LlamaForCausalLM.from_pretrained(tiny_llama).get_output_embeddings().weight
    others = [i for i in range(pretrained.shape[0]) if i not in few_shot_label_ids(tokenizer)]
    assert torch.equal(causal.lm_head.weight[others], pretrained[others])

    train_llm(tiny_config(tiny_llama, task="qnli", max_eval_samples=4), tmp_path / "qnli", progress=False)
    with pytest.raises(ConfigError, match="classifies qnli"):
        classifier_causal_lm(tmp_path / "qnli")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        classifier_causal_lm(tmp_path / "missing")


def test_llm_config_trains_with_k_offsets_as_its_own_run():
    tilted = llm_config(method="ts-dtp", k=0.5, prune_layers=[3, 7], k_offsets=[0.3, -0.3])
    uniform = llm_config(method="ts-dtp", k=0.5, prune_layers=[3, 7])
    assert tilted.pruning.k_offsets == (0.3, -0.3) and tilted.pruning.k_at(1) == pytest.approx(0.2)
    assert training_variant(tilted.pruning) == "trained dk 0.3/-0.3" and training_variant(uniform.pruning) == ""
    assert run_cache_dir(tilted, "runs") != run_cache_dir(uniform, "runs")
    with pytest.raises(ConfigError, match="k_offsets set a per-layer threshold"):
        llm_config(method="topk", k_offsets=[0.3, -0.3])
