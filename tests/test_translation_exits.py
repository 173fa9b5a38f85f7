"""Exit modes of the translation encoder (`tsdtp.core.exits`): early exit, merging, and their training forms.

A tiny random Marian (no training needed: every check is an equivalence) with eval-mode dropout.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn
from transformers import GenerationConfig, MarianConfig, MarianMTModel
from transformers.modeling_outputs import BaseModelOutput

from tsdtp.adapters.marian import MarianAdapter
from tsdtp.core.config import PruningConfig
from tsdtp.core.exits import ExitState, TokenExit, merge_flops, merge_into_kept
from tsdtp.core.flops import counted_flops, encoder_shape, method_flops
from tsdtp.core.scoring import LayerRequest
from tsdtp.errors import ConfigError, DataError
from tsdtp.runs.results import KEY_COLUMNS
from tsdtp.translation.compare import paired_bootstrap, value_at
from tsdtp.translation.config import MTConfig
from tsdtp.translation.costs import cross_attention_flops
from tsdtp.translation.distill import word_kl
from tsdtp.translation.model import PrunedTranslator, cross_attention_bias, merged_key_bias

EOS, PAD = 1, 0


@pytest.fixture(scope="module")
def marian() -> MarianMTModel:
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=60, decoder_vocab_size=60, d_model=32, encoder_layers=4, decoder_layers=2,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                          max_position_embeddings=64, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD,
                          forced_eos_token_id=EOS, scale_embedding=True, share_encoder_decoder_embeddings=True,
                          tie_word_embeddings=True)
    model = MarianMTModel(config).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=PAD, eos_token_id=EOS, pad_token_id=PAD,
                                               bad_words_ids=[[PAD]], num_beams=2, max_length=20)
    return model


@pytest.fixture(scope="module")
def sources() -> dict[str, torch.Tensor]:
    """Three sources of 14, 9 and 14 tokens, each ending in </s>, the second padded."""
    ids = torch.randint(2, 60, (3, 14), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    ids[:, -1] = EOS
    ids[1, 8], ids[1, 9:], mask[1, 9:] = EOS, PAD, 0
    return {"input_ids": ids, "attention_mask": mask}


def translator(marian: MarianMTModel, mode: str, **pruning) -> PrunedTranslator:
    settings = {"method": "ts-dtp", "k": 0.0, "d_task": 8, "exit_mode": mode, **pruning}
    return PrunedTranslator(marian, [EOS], PruningConfig(**settings)).eval()


def encode(model: PrunedTranslator, sources: dict[str, torch.Tensor], packed: bool = True):
    model.packed_inference = packed
    with torch.no_grad():
        return model.encode(sources["input_ids"], sources["attention_mask"], record_trace=True)


@pytest.mark.parametrize("mode", ["exit", "merge", "delete"])
def test_with_nothing_pruned_every_exit_mode_equals_the_dense_encoder_and_generate(marian, sources, mode):
    model = translator(marian, mode, k=1e5)  # the rule runs after every layer and keeps everything
    valid = sources["attention_mask"].bool()
    dense = model.adapter.dense_encoder(sources["input_ids"], sources["attention_mask"])
    for packed in (True, False):
        engine = encode(model, sources, packed)
        assert torch.equal(engine.tokens_per_layer[:, -1], valid.sum(-1))
        assert torch.allclose(engine.hidden[engine.valid], dense[valid], atol=1e-5)
    pruned, _ = model.generate(sources["input_ids"], sources["attention_mask"], num_beams=2, max_new_tokens=12)
    reference = model.dense_generate(sources["input_ids"], sources["attention_mask"], num_beams=2, max_new_tokens=12)
    assert torch.equal(pruned, reference)


def masked_layer_states(model: PrunedTranslator, sources: dict[str, torch.Tensor], alive: torch.Tensor
                        ) -> torch.Tensor:
    """Every layer's output [B, L, N, d] of the full batch with the tokens not alive at a layer's input masked out
    of its keys: removal's reference (masking equals removal)."""
    hidden, states = model.adapter.embed(sources["input_ids"]), []
    for layer in range(model.adapter.num_layers):
        bias = torch.where(alive[:, layer], 0.0, torch.finfo(hidden.dtype).min)
        hidden, _ = model.adapter.layer(layer, hidden, LayerRequest(bias))
        states.append(hidden)
    return torch.stack(states, dim=1)


@pytest.mark.parametrize("packed", [True, False])
def test_under_exit_the_output_holds_every_source_position_at_its_exit_state(marian, sources, packed):
    encoder = marian.get_encoder()
    assert not [name for name, module in encoder.named_children() if isinstance(module, nn.LayerNorm)]
    model = translator(marian, "exit")
    engine = encode(model, sources, packed)
    valid = sources["attention_mask"].bool()
    assert engine.hidden.shape[:2] == valid.shape and torch.equal(engine.valid, valid)
    assert torch.equal(engine.positions[0], torch.arange(valid.shape[1]))
    exit_layer = engine.keep_trace.sum(dim=1) - 1  # the last layer each token ran in (alive at its input)
    assert (exit_layer[valid] < model.adapter.num_layers - 1).any() and (engine.tokens_per_layer[:, -1] < 9).all()
    with torch.no_grad():
        states = masked_layer_states(model, sources, engine.keep_trace)
    rows, cols = valid.nonzero(as_tuple=True)
    expected = states[rows, exit_layer[rows, cols], cols]
    assert torch.allclose(engine.hidden[rows, cols], expected, atol=1e-5)
    assert torch.equal(model.cross_attention_mask(engine), sources["attention_mask"])


@pytest.mark.parametrize("mode", ["exit", "merge"])
def test_one_sentence_at_a_time_equals_its_row_of_the_padded_batch(marian, sources, mode):
    """Batch size 1 runs the fast path (no padding: no key bias unless merging, survivors selected in place)."""
    model = translator(marian, mode)
    batch = encode(model, sources, packed=False)
    for row in range(3):
        length = int(sources["attention_mask"][row].sum())
        alone = encode(model, {name: x[row:row + 1, :length] for name, x in sources.items()})
        kept = batch.valid[row]
        assert torch.equal(alone.positions[0], batch.positions[row][kept])
        assert torch.allclose(alone.hidden[0], batch.hidden[row][kept], atol=1e-5)
        if mode == "merge":
            assert torch.allclose(alone.log_sizes[0], batch.log_sizes[row][kept], atol=1e-6)


def test_merging_averages_by_size_into_the_most_similar_kept_token():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.2], [0.0, 0.0]]])
    sizes = torch.tensor([[1.0, 1.0, 2.0, 1.0]])
    live = torch.tensor([[True, True, True, False]])
    keep = torch.tensor([[True, True, False, False]])
    merged, new_sizes = merge_into_kept(hidden, sizes, live, keep)
    assert torch.allclose(merged[0, 0], (hidden[0, 0] + 2 * hidden[0, 2]) / 3)
    assert torch.equal(merged[0, 1:], hidden[0, 1:])
    assert new_sizes.tolist() == [[3.0, 1.0, 0.0, 1.0]]


@pytest.mark.parametrize("packed", [True, False])
def test_merging_preserves_the_total_size_and_counts_its_flops(marian, sources, packed):
    model = translator(marian, "merge")
    engine = encode(model, sources, packed)
    assert (engine.valid.sum(-1) < sources["attention_mask"].sum(-1)).all()
    sizes = torch.where(engine.valid, engine.log_sizes.exp(), 0.0)
    assert torch.allclose(sizes.sum(-1), sources["attention_mask"].sum(-1).float())
    shape = encoder_shape(model)
    merged = method_flops(engine.tokens_per_layer, shape, model.pruning)
    deleted = method_flops(engine.tokens_per_layer, shape, model.pruning.replace(exit_mode="delete"))
    expected = sum(float(merge_flops(engine.tokens_per_layer[:, layer], shape.hidden).sum())
                   for layer in model.pruning.prune_layers)
    assert merged.merging == pytest.approx(expected) and merged.total == pytest.approx(deleted.total + expected)
    exited = method_flops(engine.tokens_per_layer, shape, model.pruning.replace(exit_mode="exit"))
    assert exited == deleted


def duplicated(engine) -> tuple[torch.Tensor, torch.Tensor]:
    """Every merged token repeated as many times as the tokens it stands for, and the validity mask."""
    sizes = torch.where(engine.valid, engine.log_sizes.exp().round().long(), 0)
    rows = [engine.hidden[b].repeat_interleave(sizes[b], dim=0) for b in range(sizes.shape[0])]
    width = max(len(row) for row in rows)
    out = torch.zeros(len(rows), width, engine.hidden.shape[-1])
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)], mask[b, : len(row)] = row, 1
    return out, mask


def test_proportional_cross_attention_equals_reading_each_merged_token_size_times(marian, sources):
    model = translator(marian, "merge")
    engine = encode(model, sources)
    copies, mask = duplicated(engine)
    start = torch.full((3, 4), PAD)
    with torch.no_grad(), cross_attention_bias(marian, merged_key_bias(engine)):
        biased = marian(encoder_outputs=(engine.hidden,), attention_mask=engine.valid.long(),
                        decoder_input_ids=start).logits
    with torch.no_grad():
        masked = marian(encoder_outputs=(engine.hidden,), attention_mask=model.cross_attention_mask(engine),
                        decoder_input_ids=start).logits
        repeated = marian(encoder_outputs=(copies,), attention_mask=mask, decoder_input_ids=start).logits
    assert torch.allclose(biased, repeated, atol=1e-5) and torch.allclose(masked, repeated, atol=1e-5)
    sequences, _ = model.generate(sources["input_ids"], sources["attention_mask"], num_beams=3, max_new_tokens=12)
    reference = marian.generate(encoder_outputs=BaseModelOutput(last_hidden_state=copies), attention_mask=mask,
                                num_beams=3, max_length=13)
    assert torch.equal(sequences, reference)


def training_forward(model: PrunedTranslator, sources: dict[str, torch.Tensor], straight_through: bool):
    model.train()
    model.model.eval()
    model.straight_through = straight_through
    try:
        batch = {**sources, "decoder_input_ids": torch.full((3, 5), PAD)}
        output = model(batch)
        output.logits.sum().backward()
        return output
    finally:
        model.straight_through = False
        model.eval()


@pytest.mark.parametrize("mode", ["exit", "merge"])
def test_the_hard_phase_forward_is_inference_at_every_position_the_decoder_reads(marian, sources, mode):
    model = translator(marian, mode)
    inference = encode(model, sources, packed=False)
    output = training_forward(model, sources, straight_through=True)
    mask = model.cross_attention_mask(output.engine)
    if mode == "exit":
        assert torch.equal(mask, sources["attention_mask"])
        valid = sources["attention_mask"].bool()
        assert torch.allclose(output.engine.hidden[valid], inference.hidden[valid], atol=1e-5)
    else:
        rows = torch.arange(3)[:, None].expand_as(inference.positions)
        read = mask[:, 0, 0, :] > torch.finfo(mask.dtype).min / 2
        assert read.sum() == inference.valid.sum()
        training_states = output.engine.hidden[rows[inference.valid], inference.positions[inference.valid]]
        assert torch.allclose(training_states, inference.hidden[inference.valid], atol=1e-5)
        assert torch.allclose(mask[:, 0, 0, :][rows[inference.valid], inference.positions[inference.valid]],
                              inference.log_sizes[inference.valid], atol=1e-6)
    assert any(scorer.weight.grad is not None and scorer.weight.grad.abs().sum() > 0 for scorer in model.scorers)
    model.zero_grad(set_to_none=True)


def test_soft_exit_freezes_pruned_tokens_and_the_decoder_reads_every_position(marian, sources):
    model = translator(marian, "exit", k=0.5)
    output = training_forward(model, sources, straight_through=False)
    assert torch.equal(model.cross_attention_mask(output.engine), sources["attention_mask"])
    assert output.engine.log_keep is not None and (output.engine.log_keep < -1).any()
    assert all(scorer.weight.grad.abs().sum() > 0 for scorer in model.scorers[:3])
    model.zero_grad(set_to_none=True)


def test_cross_attention_flops_match_the_counted_difference_between_source_lengths(marian):
    config = marian.config
    start = torch.full((1, 6), PAD)
    counted = []
    for n in (5, 11):
        hidden = torch.randn(1, n, config.d_model)
        with torch.no_grad():
            counted.append(counted_flops(lambda: marian(encoder_outputs=(hidden,), decoder_input_ids=start)))
    analytic = cross_attention_flops(torch.tensor([11, 5]), torch.tensor([6, 6]), config.d_model,
                                     config.decoder_layers)
    assert counted[1] - counted[0] == int(analytic[0] - analytic[1])


def test_bad_settings_and_inputs_are_named(marian: MarianMTModel):
    with pytest.raises(ConfigError, match="exit_mode"):
        PruningConfig(exit_mode="drop")
    with pytest.raises(ConfigError, match="queries 'readout' needs a model whose head reads one token"):
        MarianAdapter(marian, []).readout_slots(torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="queries 'readout' needs a model whose head reads one token"):
        MTConfig(pruning=PruningConfig(method="ts-dtp", queries="readout"), init_from="runs/dense")
    with pytest.raises(ValueError, match="'drop' is not a valid TokenExit"):
        ExitState.start("drop", torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ConfigError, match="removal 'fuse' .* needs exit_mode 'delete' \\(got 'merge'\\)"):
        PruningConfig(method="ts-dtp", removal="fuse", exit_mode="merge")
    with pytest.raises(ConfigError, match="distillation needs a teacher"):
        MTConfig(distill_weight=0.5)
    with pytest.raises(DataError, match="got 2 and 1 hypotheses for 2 references"):
        paired_bootstrap(["a", "b"], ["a"], ["a", "b"])
    assert TokenExit("merge") is TokenExit.MERGE and "variant" in KEY_COLUMNS


def test_word_kl_is_zero_for_the_teacher_itself_and_ignores_padding_labels():
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100]])
    assert word_kl(logits, logits, labels).abs() < 1e-6
    other = logits.clone()
    other[0, 3] += 10.0  # a padding position: no effect
    assert word_kl(other, logits, labels).abs() < 1e-6
    assert word_kl(torch.randn(2, 4, 7), logits, labels, temperature=2.0) > 0


def test_paired_bootstrap_interval_of_the_bleu_difference():
    references = [f"a man is running in the park number {i} today" for i in range(40)]
    worse = [f"a man runs in a park {i}" for i in range(40)]
    same = paired_bootstrap(references, references, references, samples=200)
    assert same["bleu_diff"] == 0 and same["bleu_diff_low"] == same["bleu_diff_high"] == 0
    better = paired_bootstrap(references, worse, references, samples=200)
    assert better["bleu_diff"] == pytest.approx(better["bleu_a"] - better["bleu_b"])
    assert 0 < better["bleu_diff_low"] <= better["bleu_diff"] <= better["bleu_diff_high"]
    assert better["bleu_p_value"] < 0.05 and better["chrf_diff_low"] > 0


def test_value_at_reads_a_curve_between_settings_and_never_extrapolates():
    curve = pd.DataFrame({"flops_ratio": [0.8, 0.6], "bleu": [30.0, 20.0]})
    assert value_at(curve, 0.7) == pytest.approx(25.0)
    assert torch.isnan(torch.tensor(value_at(curve, 0.5)))
