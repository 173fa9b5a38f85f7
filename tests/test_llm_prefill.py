"""Prefill pruning for generation (issue 15, item 3) on a tiny random Llama: dense equivalence, the pruned cache
against a full-length masking reference, causality, protected tokens, FLOPs, and bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import papermill
import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tsdtp.analysis.prefill_plots import prefill_plot
from tsdtp.analysis.prefill_token_plots import alive_matrix, speedups_at, survival_figure, ttft_quality_figure
from tsdtp.cli import main
from tsdtp.core.flops import counted_flops
from tsdtp.errors import CheckpointError, ConfigError, DataError
from tsdtp.gguf_models import DEFAULT_LLM, packaged_gguf
from tsdtp.hub import load_tokenizer
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_few_shot import prompt_budgets
from tsdtp.llm.classifier_prompts import prepare_splits
from tsdtp.llm.classifier_train import train_llm
from tsdtp.llm.prefill import prefill
from tsdtp.llm.prefill_config import PrefillPruning, progressive_schedule
from tsdtp.llm.prefill_decode import continuation_logits, decode, greedy_tokens
from tsdtp.llm.prefill_flops import DecoderShape, prefill_flops
from tsdtp.llm.prefill_rank import pool_scores
from tsdtp.llm.prefill_scorers import load_scorers, make_scorers, save_scorers
from tsdtp.llm.prefill_survival import survival_rows
from tsdtp.llm.prefill_train import scorer_targets, train_scorers
from tsdtp.llm.prompts import (
    ANSWER_PREFIX,
    INSTRUCTION,
    LABEL_WORDS,
    FewShotPrompt,
    few_shot_prompts,
    label_token_ids,
    passages,
)
from tsdtp.measure.ttft import llama_cpp_engine, llama_cpp_problem

SPECIAL = 1
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "07_llm_prefill.ipynb"
PRUNING = PrefillPruning(prune_layers=(0, 2), keep_ratios=(0.5, 0.25), last_queries=3)
RANKING = {"last_queries": 16, "keep_last": 16, "pool": 7}  # the CLI's defaults
PRUNED_TITLE = progressive_schedule(4, 0.5, **RANKING).title()
EXPLICIT_TITLE = PrefillPruning(prune_layers=(1, 2), keep_ratios=(0.6, 0.3), **RANKING).title()


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=96,
                         attn_implementation="sdpa")
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def prompt() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 64, (40,), generator=generator)
    ids[[0, 7, 19]] = SPECIAL
    return ids


def masked_reference(model: LlamaForCausalLM, ids: torch.Tensor, alive: list[torch.Tensor]) -> torch.Tensor:
    """Logits [N, vocab] of the full sequence `ids` when layer l's keys are only the prompt tokens in `alive[l]`
    and every token after the prompt: every layer runs on all positions, pruning done by masking alone."""
    total, inner = len(ids), model.model
    positions = torch.arange(total)
    prompt = len(alive[0])
    hidden = inner.embed_tokens(ids[None])
    rotary = inner.rotary_emb(hidden, positions[None])
    for layer, kept in zip(inner.layers, alive):
        visible = torch.zeros(total, dtype=torch.bool)
        visible[kept] = True
        visible[prompt:] = True
        mask = (visible[None, :] & (positions[None, :] <= positions[:, None])) | torch.eye(total, dtype=torch.bool)
        hidden = layer(hidden, attention_mask=mask[None, None], position_embeddings=rotary)
    return model.lm_head(inner.norm(hidden))[0]


def test_without_pruning_generation_matches_transformers_generate(model, prompt):
    result = prefill(model, prompt)
    with torch.inference_mode():
        dense = model.generate(prompt[None], max_new_tokens=12, do_sample=False, eos_token_id=None,
                               pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    assert torch.equal(greedy_tokens(model, result, 12), dense.sequences[0, len(prompt):])
    torch.testing.assert_close(result.logits, dense.logits[0][0])
    assert result.keep_counts() == [len(prompt)] * 4 and result.ranked_layers == []


def test_without_pruning_continuation_logits_match_the_full_forward(model, prompt):
    continuation = torch.randint(2, 64, (9,), generator=torch.Generator().manual_seed(2))
    logits = continuation_logits(model, prefill(model, prompt), continuation)
    with torch.inference_mode():
        full = model(torch.cat([prompt, continuation])[None]).logits[0, len(prompt) - 1:-1]
    torch.testing.assert_close(logits, full, rtol=1e-4, atol=1e-5)


def test_pruned_cache_equals_masking_the_pruned_tokens(model, prompt):
    result = prefill(model, prompt, PRUNING, {SPECIAL})
    assert result.keep_counts() == [40, 20, 20, 10] and result.ranked_layers == [0, 2]
    assert result.cache.lengths() == result.keep_counts()
    generated = greedy_tokens(model, result, 6)
    with torch.inference_mode():
        reference = masked_reference(model, torch.cat([prompt, generated]), result.cache.positions)
        teacher_forced = continuation_logits(model, result, generated)
    torch.testing.assert_close(teacher_forced, reference[len(prompt) - 1:-1], rtol=1e-4, atol=1e-5)
    assert torch.equal(generated, reference[len(prompt) - 1:-1].argmax(dim=-1))
    assert not torch.allclose(teacher_forced, continuation_logits(model, prefill(model, prompt), generated))


def test_decoding_continues_the_original_positions_in_every_layer(model, prompt):
    result = prefill(model, prompt, PRUNING, {SPECIAL})
    cache = result.cache.fork()
    decode(model, cache, torch.tensor([5]))
    decode(model, cache, torch.tensor([6, 7]))
    cache.check()
    assert cache.lengths() == [n + 3 for n in result.keep_counts()]
    assert all(positions[-3:].tolist() == [40, 41, 42] for positions in cache.positions)
    assert result.cache.lengths() == result.keep_counts()  # the fork left the prefill's cache alone


def test_the_last_token_and_special_tokens_survive_every_layer(model, prompt):
    tiny = PrefillPruning(prune_layers=(0, 1), keep_ratios=(0.1, 0.01))
    result = prefill(model, prompt, tiny, {SPECIAL})
    for positions in result.cache.positions:
        assert {0, 7, 19, 39} <= set(positions.tolist())
    assert result.cache.positions[-1].tolist() == [0, 7, 19, 39]  # 1 % of 40 rounds up to 1; the protected stay


def test_the_observation_window_survives_and_pooling_keeps_neighbours(model, prompt):
    windowed = PRUNING.replace(keep_last=12, pool=5)
    result = prefill(model, prompt, windowed, {SPECIAL})
    assert set(range(28, 40)) <= set(result.cache.positions[-1].tolist())
    assert result.keep_counts() == [40, 20, 20, 15]  # 25 % is 10 tokens; the window (12) and 3 specials stay
    scores = torch.tensor([0.0, 0.1, 5.0, 0.2, 0.0, 0.0, 0.3])
    assert pool_scores(scores, 3).tolist() == pytest.approx([0.1, 5.0, 5.0, 5.0, 0.2, 0.3, 0.3])
    assert torch.equal(pool_scores(scores, 1), scores)


def test_a_kept_token_does_not_depend_on_later_tokens(model, prompt):
    """With survivors fixed by protection, changing tokens after position 20 leaves the cache before it alone."""
    forced = PrefillPruning(prune_layers=(0,), keep_ratios=(0.01,))
    later = prompt.clone()
    later[21:-1] = (prompt[21:-1] + 5) % 62 + 2  # never SPECIAL (1): the survivors stay the same
    first, second = prefill(model, prompt, forced, {SPECIAL}), prefill(model, later, forced, {SPECIAL})
    assert all(torch.equal(a, b) for a, b in zip(first.cache.positions, second.cache.positions))
    for a, b, positions in zip(first.cache.cache.layers, second.cache.cache.layers, first.cache.positions):
        early = int((positions <= 20).sum())
        assert torch.equal(a.keys[..., :early, :], b.keys[..., :early, :])
        assert torch.equal(a.values[..., :early, :], b.values[..., :early, :])
    assert not torch.equal(first.logits, second.logits)


@pytest.mark.parametrize("pruning", [PrefillPruning(), PRUNING, PRUNING.replace(gamma=0.5, d_task=8)])
def test_flops_are_exact_against_the_flop_counter(model, prompt, pruning):
    scorers = make_scorers(pruning, model.config.hidden_size) if pruning.gamma else None
    result = prefill(model, prompt, pruning, {SPECIAL}, scorers)
    flops = prefill_flops(DecoderShape.of(model.config), result.keep_counts(), result.ranked_layers, pruning)
    assert flops.pruned == counted_flops(lambda: prefill(model, prompt, pruning, {SPECIAL}, scorers))
    assert (flops.ratio < 1.0) == pruning.prunes


def test_the_task_scorer_changes_the_ranking_only_through_gamma(model, prompt):
    hybrid = PRUNING.replace(gamma=1000.0, d_task=8)
    scorers = make_scorers(hybrid, model.config.hidden_size)
    plain, mixed = prefill(model, prompt, PRUNING, {SPECIAL}), prefill(model, prompt, hybrid, {SPECIAL}, scorers)
    assert plain.keep_counts() == mixed.keep_counts()
    assert not all(torch.equal(a, b) for a, b in zip(plain.cache.positions, mixed.cache.positions))
    with pytest.raises(ConfigError, match="needs a trained task scorer"):
        prefill(model, prompt, hybrid)


def test_bad_inputs_are_clear_errors(model, prompt):
    with pytest.raises(ConfigError, match="the prompt is empty"):
        prefill(model, torch.tensor([], dtype=torch.long))
    with pytest.raises(ConfigError, match="over the model's context limit of 96"):
        prefill(model, torch.ones(97, dtype=torch.long))
    with pytest.raises(ConfigError, match="one prompt"):
        prefill(model, prompt.repeat(2, 1))
    with pytest.raises(ConfigError, match="prune layer 4 does not exist"):
        prefill(model, prompt, PrefillPruning(prune_layers=(4,), keep_ratios=(0.5,)))
    with pytest.raises(ConfigError, match="past the model's context limit"):
        decode(model, prefill(model, torch.ones(95, dtype=torch.long)).cache, torch.tensor([1, 2]))
    bert = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32))
    with pytest.raises(ConfigError, match="needs a Llama-architecture causal LM"):
        prefill(bert, prompt)


@pytest.mark.parametrize("fields, message", [
    ({"prune_layers": (1, 2), "keep_ratios": (0.5,)}, "the same length"),
    ({"prune_layers": (2, 1), "keep_ratios": (0.5, 0.4)}, "strictly increasing"),
    ({"prune_layers": (1, 2), "keep_ratios": (0.4, 0.5)}, "never rise"),
    ({"prune_layers": (1,), "keep_ratios": (0.0,)}, "keep_ratios must hold values in"),
    ({"last_queries": 0}, "last_queries must be"),
    ({"pool": 4}, "pool must be odd"),
])
def test_bad_schedules_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        PrefillPruning(**fields)


def test_the_progressive_schedule_spreads_layers_and_falls_to_the_final_keep():
    schedule = progressive_schedule(30, 0.25)
    assert schedule.prune_layers == (4, 10, 16, 22)
    assert schedule.keep_ratios[-1] == pytest.approx(0.25) and schedule.prunes


def word_tokenizer(words: set[str]) -> PreTrainedTokenizerFast:
    """A whitespace-and-punctuation word tokenizer over `words`, with a ChatML chat template."""
    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {word: index for index, word in enumerate(specials + sorted(words))}
    model = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="<unk>", bos_token="<|im_start|>",
                                        eos_token="<|im_end|>")
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tokenizer


@pytest.fixture(scope="module")
def words(glue_dir) -> set[str]:
    texts = [line for path in glue_dir.rglob("*.tsv") for line in path.read_text().splitlines()]
    texts += (glue_dir / "wmt16_en_de" / "newstest" / "newstest2016.en").read_text().splitlines()
    texts += [INSTRUCTION, "Review: Sentiment: positive negative user assistant system"]
    return {word for text in texts for word in Whitespace().pre_tokenize_str(text) for word in [word[0]]}


def test_few_shot_prompts_fill_their_budget_and_end_with_the_assistant_turn(glue_dir, words):
    tokenizer = word_tokenizer(words)
    prompts = few_shot_prompts(tokenizer, glue_dir, 120, 3)
    assert [p.label for p in prompts] == [1, 0, 0]  # the first dev rows
    for prompt in prompts:
        assert 120 - 25 < len(prompt.input_ids) <= 120 and prompt.demonstrations >= 2
        text = tokenizer.decode(prompt.input_ids[prompt.query_start:])
        assert text.startswith("Review :") and text.endswith("<|im_start|> assistant Sentiment :")
    assert label_token_ids(tokenizer) == tuple(tokenizer.convert_tokens_to_ids(list(LABEL_WORDS)))
    with pytest.raises(DataError, match="fits no demonstration"):
        few_shot_prompts(tokenizer, glue_dir, 20, 1)


def test_passages_are_consecutive_news_cut_at_the_prompt_length(glue_dir, words):
    tokenizer = word_tokenizer(words)
    (passage,) = passages(tokenizer, glue_dir, 12, 4, 1)
    news = " ".join((glue_dir / "wmt16_en_de" / "newstest" / "newstest2016.en").read_text().split("\n"))
    expected = tokenizer.encode(news, add_special_tokens=False)[:16]
    assert passage.input_ids.tolist() == expected[:12] and passage.continuation.tolist() == expected[12:]
    with pytest.raises(DataError, match="holds only"):
        passages(tokenizer, glue_dir, 40, 4, 3)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory, glue_dir, words) -> tuple[Path, Path]:
    """A saved tiny random Llama with the word tokenizer, and a copy of the data with longer news."""
    root = tmp_path_factory.mktemp("tiny-llm")
    tokenizer = word_tokenizer(words)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    data = shutil.copytree(glue_dir, root / "data")
    news = data / "wmt16_en_de" / "newstest" / "newstest2016.en"
    news.write_text(news.read_text() * 4)
    return root / "model", data


def test_the_prefill_command_writes_quality_and_speed_tables(tiny_llm, tmp_path, capsys):
    model, data = tiny_llm
    status = main(["prefill", "--model", str(model), "--lengths", "80", "--few-shot", "2",
                   "--passages", "1", "--steps", "4", "--speed-repeats", "1", "--final-keep", "0.5",
                   "--schedule", "1:0.6,2:0.3",
                   "--data-dir", str(data), "--tables-dir", str(tmp_path / "tables")])
    assert status == 0, capsys.readouterr().err
    quality = pd.read_csv(tmp_path / "tables" / "llm_prefill_quality.csv")
    speed = pd.read_csv(tmp_path / "tables" / "llm_prefill_speed.csv")
    assert sorted(set(quality["kind"])) == ["few-shot sst2", "passages newstest2016"]
    dense = quality[quality["setting"] == "dense"]
    assert (dense["flops_ratio"] == 1.0).all() and (dense.filter(like="agreement").stack().dropna() == 1.0).all()
    assert set(speed["engine"]) == {"hf-generate", "dense", PRUNED_TITLE, EXPLICIT_TITLE}
    assert (speed["repeats"] == 1).all()
    assert (quality[quality["setting"].isin([PRUNED_TITLE, EXPLICIT_TITLE])]["flops_ratio"] < 1.0).all()


def test_the_prefill_notebook_measures_then_draws_from_the_tables_alone(tiny_llm, tmp_path):
    model, data = tiny_llm
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    parameters = {"model_id": str(model), "lengths": [80], "few_shot": 2, "passages": 1, "steps": 4,
                  "speed_repeats": 1, "threads": 1, "schedules": [[[1, 2], [0.6, 0.3]]], "data_dir": str(data),
                  "results_csv": str(tables / "results.csv"), "figures_dir": str(figures)}
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "measured.ipynb"), parameters=parameters,
                               kernel_name="python3", progress_bar=False)
    speed = pd.read_csv(tables / "llm_prefill_speed.csv")
    assert set(speed["engine"]) == {"hf-generate", "dense", PRUNED_TITLE, EXPLICIT_TITLE}
    survival = pd.read_parquet(tables / "llm_prefill_survival.parquet")
    assert set(survival["setting"]) == {"dense", PRUNED_TITLE, EXPLICIT_TITLE}
    assert set(survival["layer"]) == set(range(4))
    figure_names = ["llm_prefill.png", "llm_prefill_tokens.png", "llm_prefill_tradeoff.png"]
    for name in figure_names:
        (figures / name).unlink()
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "drawn.ipynb"), kernel_name="python3",
                               parameters={**parameters, "measure": False, "trace_tokens": False,
                                           "model_id": "nobody/no-such-model"}, progress_bar=False)
    assert all((figures / name).stat().st_size > 0 for name in figure_names)
    assert pd.read_csv(tables / "llm_prefill_speed.csv").equals(speed)
    assert pd.read_parquet(tables / "llm_prefill_survival.parquet").equals(survival)


def test_scorers_learn_the_later_layers_attention_and_survive_a_round_trip(model, prompt, tmp_path):
    hybrid = PRUNING.replace(gamma=1.0, d_task=8)
    example = scorer_targets(model, prompt, hybrid)
    assert sorted(example) == [0, 2]
    for features, target in example.values():
        assert features.shape == (1, 40, 48) and torch.allclose(target.sum(), torch.tensor(1.0))
    scorers = make_scorers(hybrid, model.config.hidden_size)
    losses = train_scorers(scorers, [example], hybrid.last_queries, epochs=8, lr=1e-2, log=lambda _: None)
    assert losses[-1] < losses[0]
    save_scorers(scorers, hybrid, tmp_path / "scorers.pt")
    loaded, schedule = load_scorers(tmp_path / "scorers.pt", model.config.hidden_size)
    assert schedule == hybrid
    first, second = (prefill(model, prompt, hybrid, {SPECIAL}, s) for s in (scorers, loaded))
    assert all(torch.equal(a, b) for a, b in zip(first.cache.positions, second.cache.positions))
    with pytest.raises(CheckpointError, match="no prefill scorers"):
        load_scorers(tmp_path / "missing.pt", 48)
    with pytest.raises(CheckpointError, match="do not fit a model of hidden size 32"):
        load_scorers(tmp_path / "scorers.pt", 32)


def test_trained_scorers_join_the_prefill_command_beside_their_schedule_without_them(tiny_llm, tmp_path, capsys):
    model, data = tiny_llm
    args = ["--model", str(model), "--data-dir", str(data)]
    assert main(["prefill-train", *args, "--length", "80", "--prompts", "2", "--epochs", "2", "--d-task", "8",
                 "--final-keep", "0.5", "--out", str(tmp_path / "scorers.pt")]) == 0, capsys.readouterr().err
    assert main(["prefill", *args, "--scorers", str(tmp_path / "scorers.pt"), "--gamma", "0.7", "--lengths", "80",
                 "--few-shot", "2", "--passages", "0", "--speed-repeats", "0",
                 "--tables-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    settings = pd.read_csv(tmp_path / "llm_prefill_quality.csv")["setting"].tolist()
    assert settings == ["dense", PRUNED_TITLE, f"{PRUNED_TITLE} g0.7"]
    assert main(["prefill", *args, "--scorers", str(tmp_path / "none.pt")]) == 2
    assert "no prefill scorers" in capsys.readouterr().err
    assert main(["prefill", *args, "--schedule", "6-0.5"]) == 2
    assert "expected LAYER:RATIO" in capsys.readouterr().err


def test_the_prefill_command_names_an_unknown_model_and_missing_data(tiny_llm, capsys, monkeypatch):
    assert main(["prefill", "--model", "nobody/no-such-model", "--data-dir", str(tiny_llm[1])]) == 2
    assert "cannot load model 'nobody/no-such-model'" in capsys.readouterr().err
    monkeypatch.delenv("TSDTP_DATA_DIR")
    assert main(["prefill", "--model", str(tiny_llm[0])]) == 2
    assert "give --data-dir or set TSDTP_DATA_DIR" in capsys.readouterr().err


def test_llama_cpp_is_timed_only_when_its_decode_works(tmp_path):
    assert llama_cpp_problem(tmp_path / "missing.gguf") in (f"there is no GGUF file {tmp_path / 'missing.gguf'}",
                                                            "the llama_cpp package (llama-cpp-python) is not installed")
    gguf = packaged_gguf(DEFAULT_LLM)
    if gguf is None or llama_cpp_problem(gguf) is not None:
        pytest.skip(f"llama.cpp cannot run the packaged GGUF here: {gguf and llama_cpp_problem(gguf)}")
    engine = llama_cpp_engine(gguf, threads=1, context=64)
    stamps = [engine(torch.tensor([1, 9690, 198, 2683, 359, 253]), 3) for _ in range(2)]
    assert [len(times) for times in stamps] == [4, 4]  # the start, then one stamp per token, every call
    assert all(later[0] > earlier[0] for times in stamps for earlier, later in zip(times, times[1:]))


def test_the_prefill_command_measures_a_classification_run_with_its_head(tiny_llm, tmp_path, capsys):
    model, data = tiny_llm
    config = LlmTrainConfig(model=str(model), max_length=48, batch_size=8, max_train_samples=8, max_eval_samples=2)
    train_llm(config, tmp_path / "run", progress=False)
    status = main(["prefill", "--classifier", str(tmp_path / "run"), "--lengths", "80", "--few-shot", "2",
                   "--passages", "0", "--speed-repeats", "0", "--final-keep", "0.5", "--schedule", "1:0.6,2:0.3",
                   "--data-dir", str(data), "--tables-dir", str(tmp_path / "tables")])
    assert status == 0, capsys.readouterr().err
    quality = pd.read_csv(tmp_path / "tables" / "llm_prefill_quality.csv")
    assert set(quality["model"]) == {"run (classifier)"} and len(quality) == 3
    by_setting = quality.set_index("setting")
    assert by_setting.loc["dense", "answer_agreement"] == 1.0
    assert (by_setting.loc["dense", ["difference", "difference_low", "difference_high"]] == 0.0).all()
    dense_accuracy = by_setting.loc["dense", "accuracy"]
    assert np.allclose(quality["difference"], 100 * (quality["accuracy"] - dense_accuracy))
    assert (quality["difference_low"] <= quality["difference"]).all()
    assert (quality["difference"] <= quality["difference_high"]).all()


def contains(ids: list[int], part: list[int]) -> int:
    """How often `part` occurs in `ids` as a contiguous run."""
    return sum(ids[start:start + len(part)] == part for start in range(len(ids) - len(part) + 1))


def test_a_few_shot_run_trains_on_few_shot_prompts_of_drawn_lengths(tiny_llm, tmp_path):
    model, data = tiny_llm
    config = LlmTrainConfig(model=str(model), max_length=256, few_shot_tokens=256, batch_size=4,
                            max_train_samples=6, max_eval_samples=2)
    tokenizer = load_tokenizer(str(model))
    train, evaluation, _ = prepare_splits(config, tokenizer, str(data))
    answer = tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)
    for split in (train, evaluation):
        for ids, (sentence,) in zip(split.input_ids, split.texts):
            assert ids[-len(answer):] == answer and len(ids) <= 256
            assert contains(ids, tokenizer.encode(f"Review: {sentence.strip()}", add_special_tokens=False)) == 1
    assert all(256 - 40 < length for length in train.lengths() + evaluation.lengths())  # prompts fill the budget
    drawn = prompt_budgets(200, 2048, seed=0, drawn=True)
    assert min(drawn) >= 512 and max(drawn) <= 2048 and len(set(drawn)) > 100
    assert min(prompt_budgets(200, 512, seed=0, drawn=True)) >= 256  # never under MIN_FEW_SHOT_TOKENS
    assert prompt_budgets(3, 512, seed=0, drawn=False) == [512] * 3
    metrics = train_llm(config, tmp_path / "run", str(data), progress=False)
    assert metrics["steps"] == 2
    with pytest.raises(ConfigError, match="few_shot_tokens builds SST-2 few-shot prompts; task 'qnli'"):
        LlmTrainConfig(task="qnli", max_length=512, few_shot_tokens=512)
    with pytest.raises(ConfigError, match="few_shot_tokens must be between 256 and max_length \\(256\\); got 512"):
        LlmTrainConfig(few_shot_tokens=512)


def test_the_prefill_figure_keeps_each_models_few_shot_lines_apart():
    rows = [{"model": model, "kind": "few-shot sst2", "length": length, "setting": setting, "accuracy": 0.5,
             "examples": 2} for model in ("base", "run (classifier)") for setting in ("dense", "pruned")
            for length in (512, 2048)]
    speed = pd.DataFrame([{"engine": "dense", "length": 512, "ttft_speedup_vs_hf": 1.0, "flops_implied_speedup": 1.0}])
    few_shot = prefill_plot(pd.DataFrame(rows), speed).axes[1]
    assert [line.get_xdata().tolist() for line in few_shot.lines[:4]] == [[512, 2048]] * 4
    assert [text.get_text() for text in few_shot.get_legend().get_texts()] == ["base", "run (classifier)"]
    assert few_shot.get_title() == "few-shot sst2 (2 per length)"


def test_the_prefill_figure_names_a_setting_only_one_model_measured():
    rows = [{"model": "base", "kind": "few-shot sst2", "length": 2048, "setting": "dense", "accuracy": 0.5,
             "examples": 40},
            {"model": "run", "kind": "few-shot sst2", "length": 2048, "setting": "scored", "accuracy": 0.5,
             "examples": 80}]
    speed = pd.DataFrame([{"engine": "dense", "length": 2048, "ttft_speedup_vs_hf": 1.0, "flops_implied_speedup": 1.0}])
    figure = prefill_plot(pd.DataFrame(rows), speed)
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["dense", "scored"]
    assert figure.axes[1].get_title() == "few-shot sst2 (40-80 per point)"


def test_the_survival_trace_holds_every_layers_cached_tokens(model, prompt):
    few_shot = FewShotPrompt(prompt, label=1, demonstrations=2, query_start=30)
    label_ids = (int(prompt[3]), int(prompt[11]))
    rows = pd.DataFrame(survival_rows(model, few_shot, {"dense": PrefillPruning(), "pruned": PRUNING},
                                      frozenset({SPECIAL}), label_ids))
    dense, pruned = (rows[rows["setting"] == name] for name in ("dense", "pruned"))
    assert all(list(positions) == list(range(40)) for positions in dense["positions"])
    assert pruned["cached"].tolist() == prefill(model, prompt, PRUNING, {SPECIAL}).keep_counts()
    kept = [set(positions) for positions in pruned["positions"]]
    assert all(later <= earlier and {0, 7, 19, 39} <= later for earlier, later in zip(kept, kept[1:]))
    labels = torch.isin(prompt, torch.tensor(label_ids)).nonzero().flatten().tolist()
    assert {3, 11} <= set(labels) and list(rows["label_positions"].iloc[0]) == labels
    assert alive_matrix(pruned).sum() == pruned["cached"].sum() and alive_matrix(pruned).shape == (4, 40)

    figure = survival_figure(rows.assign(model="tiny"), "tiny")
    assert len(figure.axes) == 2 and len(figure.axes[1].lines) == 2, "one heatmap (pruned) and both cache lines"


def test_the_tradeoff_figure_puts_each_timed_setting_at_its_speedup():
    quality = pd.DataFrame([{"model": "m", "kind": kind, "length": 2048, "setting": setting, "answer_agreement": 0.9,
                             "agreement": 0.7, "agreement_teacher_forced": 0.95}
                            for kind in ("few-shot sst2", "passages newstest2016") for setting in ("dense", "pruned")])
    speed = pd.DataFrame([{"model": "m", "length": 2048, "engine": engine, "ttft_speedup_vs_hf": value}
                          for engine, value in (("dense", 1.0), ("pruned", 1.8), ("hf-generate", 1.0))])
    few_shot, passages_panel = ttft_quality_figure(quality, speed, 2048).axes
    assert sorted(x for points in few_shot.collections for x in points.get_offsets()[:, 0]) == [1.0, 1.8]
    assert len(passages_panel.collections) == 4, "free-running and teacher-forced agreement of each setting"


def test_an_untimed_model_takes_its_settings_timing_from_the_timed_model():
    quality = pd.DataFrame([{"model": model, "kind": "few-shot sst2", "length": 2048, "setting": setting,
                             "answer_agreement": 0.9}
                            for model in ("m", "m (classifier)") for setting in ("dense", "pruned", "scored")])
    speed = pd.DataFrame([{"model": "m", "length": length, "engine": engine, "ttft_speedup_vs_hf": value}
                          for length in (512, 2048) for engine, value in (("dense", 1.0), ("pruned", length / 1000))])
    joined = speedups_at(quality, speed, 2048)
    assert sorted(zip(joined["model"], joined["setting"], joined["ttft_speedup_vs_hf"], joined["timed_on"])) == [
        ("m", "dense", 1.0, "m"), ("m", "pruned", 2.048, "m"),
        ("m (classifier)", "dense", 1.0, "m"), ("m (classifier)", "pruned", 2.048, "m")], "never timed: dropped"
    legend = [text.get_text() for text in ttft_quality_figure(quality, speed, 2048).legends[0].get_texts()]
    assert legend == ["dense", "pruned", "m", "m (classifier) (timed as m)"]
