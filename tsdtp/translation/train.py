"""Train one translation run: from scratch (tokenizer and model), from a pretrained Marian, or from a run.

AdamW (betas 0.9/0.98) with linear warm-up and decay, label-smoothed cross-entropy plus the
pruning terms, batches of at most `max_tokens` padded tokens from length-sorted groups.
The run directory is written as training goes: `config.json` first (a scratch run's
`tokenizer/` next), `state.pt` every `save_every` steps and at each epoch end (an interrupted
run resumes where it stopped), `model/`, `scorers.pt` and `metrics.json` after each epoch's
validation (loss, and greedy BLEU on `val_samples` pairs).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import MarianMTModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from tsdtp.checkpoint import atomic_torch_save, atomic_write_json, load_trainer_state
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.hub import resolve_model, short_model_name
from tsdtp.train import seed_everything
from tsdtp.translation.checkpoint import load_translator, save_translator
from tsdtp.translation.config import MTConfig
from tsdtp.translation.data import ParallelCorpus, load_corpus
from tsdtp.translation.encoding import EncodedPairs, collate_pairs, encode_corpus, token_batches
from tsdtp.translation.evaluate import score, translate
from tsdtp.translation.model import PrunedTranslator, build_scratch_model, special_token_ids
from tsdtp.translation.tokenizer import load_tokenizer, train_tokenizer


def training_corpus(config: MTConfig, data_dir: str | None) -> ParallelCorpus:
    """The training corpora concatenated, subsampled (seeded) to `max_train_samples`."""
    parts = [load_corpus(name, data_dir) for name in config.train_corpora]
    sources = [text for part in parts for text in part.sources]
    targets = [text for part in parts for text in part.targets]
    if config.max_train_samples is not None and config.max_train_samples < len(sources):
        order = torch.randperm(len(sources), generator=torch.Generator().manual_seed(config.seed))
        keep = sorted(order[: config.max_train_samples].tolist())
        sources, targets = [sources[i] for i in keep], [targets[i] for i in keep]
    return ParallelCorpus("+".join(config.train_corpora), "train", "/".join(p.domain for p in parts), sources,
                          targets)


def validation_corpus(config: MTConfig, data_dir: str | None) -> ParallelCorpus:
    """Multi30k val when training on Multi30k, else newstest2015."""
    return load_corpus("multi30k-val" if "multi30k" in config.train_corpora else "newstest2015", data_dir)


def prepare_model(config: MTConfig, run_dir: Path, train: ParallelCorpus
                  ) -> tuple[PrunedTranslator, PreTrainedTokenizerBase, str]:
    """The translator to train, its tokenizer and its model label for results.csv.

    A scratch run trains its tokenizer into `run_dir/tokenizer` once; `init_from` takes the
    model, tokenizer and label of that run, with fresh scorers.
    """
    if config.init_from is not None:
        source, tokenizer, _, label = load_translator(config.init_from)
        return PrunedTranslator(source.model, source.special_ids, config.pruning), tokenizer, label
    if config.scratch:
        folder = run_dir / "tokenizer"
        if (folder / "tokenizer_config.json").is_file():
            tokenizer = load_tokenizer(str(folder))
        else:
            tokenizer = train_tokenizer(train.sources + train.targets, folder, config.vocab_size,
                                        max(config.max_source_length, config.max_target_length),
                                        threads=torch.get_num_threads())
        model = build_scratch_model(config, tokenizer)
        label = f"marian-scratch-e{config.encoder_layers}d{config.decoder_layers}-{config.d_model}"
    else:
        try:
            tokenizer = load_tokenizer(config.model)
            model = MarianMTModel.from_pretrained(resolve_model(config.model))
        except OSError as exc:
            raise ConfigError(f"cannot load the pretrained Marian model {config.model!r} (offline? use "
                              f"--model scratch): {exc}") from exc
        label = short_model_name(config.model)
    return PrunedTranslator(model, special_token_ids(tokenizer), config.pruning), tokenizer, label


def epoch_plan(pairs: EncodedPairs, config: MTConfig) -> list[list[list[int]]]:
    """The batches of every epoch (seeded per epoch), the last cut to the fraction `epochs` asks for."""
    epochs = math.ceil(config.epochs)
    plan = [token_batches(pairs.source_lengths(), pairs.target_lengths(), config.max_tokens, shuffle=True,
                          seed=config.seed + epoch) for epoch in range(epochs)]
    fraction = config.epochs - (epochs - 1)
    plan[-1] = plan[-1][: max(1, round(fraction * len(plan[-1])))]
    return plan


def _check_run_dir(run_dir: Path, config: MTConfig) -> None:
    saved = run_dir / "config.json"
    if saved.is_file():
        try:
            previous = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{saved} is not valid JSON ({exc}); remove the run directory to start again")
        if previous != json.loads(json.dumps(config.to_dict())):
            raise CheckpointError(f"{run_dir} holds a run with a different config; choose another --run-dir "
                                  "or delete it")
    atomic_write_json(saved, config.to_dict())


@torch.no_grad()
def validation_loss(translator: PrunedTranslator, pairs: EncodedPairs, config: MTConfig, pad_id: int,
                    start_id: int) -> float:
    """Mean token cross-entropy (no smoothing) with hard pruning, as at inference."""
    was_training = translator.training
    translator.eval()
    total, count = 0.0, 0
    for indices in token_batches(pairs.source_lengths(), pairs.target_lengths(), config.max_tokens, shuffle=False):
        batch = collate_pairs(pairs, indices, pad_id, start_id)
        tokens = int((batch["labels"] != -100).sum())
        loss, _ = translator.loss(translator(batch), batch["labels"])
        total, count = total + float(loss) * tokens, count + tokens
    translator.train(was_training)
    return total / max(count, 1)


def train_translation(config: MTConfig, run_dir: str | Path, data_dir: str | None = None, progress: bool = True
                      ) -> dict[str, Any]:
    """Train `config` into `run_dir`, resuming an interrupted run; returns the metrics."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_run_dir(run_dir, config)
    seed_everything(config.seed)
    train_corpus, val_corpus = training_corpus(config, data_dir), validation_corpus(config, data_dir)
    translator, tokenizer, label = prepare_model(config, run_dir, train_corpus)
    train_pairs = encode_corpus(tokenizer, train_corpus, config.max_source_length, config.max_target_length)
    val_pairs = (encode_corpus(tokenizer, val_corpus.head(config.val_samples), config.max_source_length,
                               config.max_target_length) if config.val_samples else None)
    pad_id, start_id = tokenizer.pad_token_id, translator.model.config.decoder_start_token_id
    model_params = list(translator.model.named_parameters())
    optimizer = torch.optim.AdamW([
        {"params": [p for _, p in model_params if p.dim() > 1], "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": [p for _, p in model_params if p.dim() <= 1], "lr": config.lr, "weight_decay": 0.0},
        {"params": list(translator.scorers.parameters()), "lr": config.scorer_lr, "weight_decay": 0.0},
    ], betas=(0.9, 0.98), eps=1e-8)
    plan = epoch_plan(train_pairs, config)
    starts = [sum(len(epoch) for epoch in plan[:e]) for e in range(len(plan))]
    total_steps = sum(len(epoch) for epoch in plan)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    step, history, seconds = 0, [], 0.0
    state = load_trainer_state(run_dir)
    if state is not None:
        translator.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history, seconds = state["step"], state["history"], state["train_seconds"]
        torch.set_rng_state(state["torch_rng"])
    if step >= total_steps and (run_dir / "metrics.json").is_file():
        return json.loads((run_dir / "metrics.json").read_text())

    def save_state() -> None:
        atomic_torch_save(run_dir / "state.pt", {
            "model": translator.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "step": step, "history": history, "train_seconds": seconds,
            "torch_rng": torch.get_rng_state()})

    hard_from = total_steps - round(config.hard_ratio * total_steps)
    bar = tqdm(total=total_steps, initial=step, desc=f"mt-train {config.pruning.method}", disable=not progress)
    parts: dict[str, float] = {}
    while step < total_steps:
        epoch = max(e for e, start in enumerate(starts) if start <= step)
        translator.train()
        started = time.perf_counter()
        for indices in plan[epoch][step - starts[epoch]:]:
            translator.straight_through = step >= hard_from
            batch = collate_pairs(train_pairs, indices, pad_id, start_id)
            loss, parts = translator.loss(translator(batch), batch["labels"], config.label_smoothing)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(translator.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix({key: f"{value:.3f}" for key, value in parts.items()})
            if step % config.save_every == 0 and step < starts[epoch] + len(plan[epoch]):
                seconds += time.perf_counter() - started
                started = time.perf_counter()
                save_state()
        seconds += time.perf_counter() - started
        history.append({"epoch": epoch + 1, "step": step, "train_ce": parts.get("ce"),
                        **_validate(translator, tokenizer, val_pairs, config, pad_id, start_id, progress)})
        save_translator(run_dir, translator, tokenizer, label)
        metrics = {"task": config.task, "model": label, "method": config.pruning.method,
                   "train_pairs": len(train_pairs), "val_split": val_corpus.split_label, "steps": step,
                   "total_steps": total_steps, "train_seconds": round(seconds, 1),
                   "threads": torch.get_num_threads(), "history": history, "final": history[-1]}
        atomic_write_json(run_dir / "metrics.json", metrics)
        save_state()
    bar.close()
    return json.loads((run_dir / "metrics.json").read_text())


def _validate(translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase, pairs: EncodedPairs | None,
              config: MTConfig, pad_id: int, start_id: int, progress: bool) -> dict[str, float]:
    if pairs is None:
        return {}
    loss = validation_loss(translator, pairs, config, pad_id, start_id)
    translations = translate(translator, tokenizer, pairs.source_ids, config.eval_batch_size, num_beams=1,
                             max_target_length=config.max_target_length, progress=progress)
    bleu = score(translations.hypotheses, pairs.corpus.targets)["bleu"]
    kept = float(translations.tokens_per_layer.double().sum() / (translations.tokens_per_layer[:, :1].double().sum()
                                                                  * translations.tokens_per_layer.shape[1]))
    return {"val_loss": round(loss, 4), "val_bleu_greedy": round(bleu, 2), "val_keep_ratio": round(kept, 4)}
