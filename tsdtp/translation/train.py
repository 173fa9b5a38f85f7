"""Train one translation run: from scratch (tokenizer and model), from a pretrained Marian, or from a run.

AdamW (betas 0.9/0.98) with linear warm-up and decay, label-smoothed cross-entropy (mixed with
word-level distillation from a dense teacher when `distill_weight > 0`, `tsdtp.translation.distill`)
plus the pruning terms, batches of at most `max_tokens` padded tokens from length-sorted groups.
The run directory is opened once the inputs are validated (`tsdtp.runs.run_dir.open_run`) and written
as training goes: `config.json` first (a scratch run's `tokenizer/` next), `state.pt` every
`save_every` steps and at each epoch end but the last (an interrupted run resumes where it
stopped), `model/`, `scorers.pt` and `metrics.json` after each epoch's validation (loss, and
greedy BLEU on `val_samples` pairs).
"""

from __future__ import annotations

import math
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import MarianMTModel, PreTrainedTokenizerBase

from tsdtp.core.pruned_model import special_token_ids
from tsdtp.data_files import DataSource
from tsdtp.errors import CheckpointError
from tsdtp.hub import load_pretrained, load_tokenizer, short_model_name
from tsdtp.runs.data_parallel import Forward
from tsdtp.runs.device import CPU, model_device, on_device
from tsdtp.runs.distributed import barrier, is_main, share, sum_over_ranks
from tsdtp.runs.run_dir import open_run
from tsdtp.runs.training_data import check_training_data, record_training_data
from tsdtp.runs.training_loop import RunHooks, plan_epochs, seed_everything, train_with_adamw
from tsdtp.translation.checkpoint import (
    MODEL_FOLDER,
    SCORER_FILE,
    STAGING_FOLDERS,
    TOKENIZER_FOLDER,
    load_translator,
    save_translator,
)
from tsdtp.translation.config import MTConfig
from tsdtp.translation.data import ParallelCorpus, data_source, load_corpus
from tsdtp.translation.distill import Teacher, distilled_loss
from tsdtp.translation.encoding import (
    EncodedPairs,
    collate_pairs,
    encode_corpus,
    token_batches,
)
from tsdtp.translation.evaluate import score, translate
from tsdtp.translation.model import (
    PrunedTranslator,
    TranslatorOutput,
    build_scratch_model,
    token_cross_entropy,
)
from tsdtp.translation.tokenizer import install_tokenizer, train_tokenizer


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


def validation_corpus_name(config: MTConfig) -> str:
    """Multi30k val when training on Multi30k, else newstest2015."""
    return "multi30k-val" if "multi30k" in config.train_corpora else "newstest2015"


def validation_corpus(config: MTConfig, data_dir: str | None) -> ParallelCorpus:
    """The corpus `validation_corpus_name` names."""
    return load_corpus(validation_corpus_name(config), data_dir)


def training_data(config: MTConfig, data_dir: str | None) -> DataSource:
    """The data `train_translation` reads for `config` from `data_dir` (else `TSDTP_DATA_DIR`, else the hub)."""
    return data_source(data_dir, [*config.train_corpora, validation_corpus_name(config)])


def prepare_model(config: MTConfig, run_dir: Path, train: ParallelCorpus, staging: Path
                  ) -> tuple[PrunedTranslator, PreTrainedTokenizerBase, str]:
    """The translator to train, its tokenizer and its model label for results.csv.

    A scratch run trains its tokenizer once, into `staging` (outside the run directory: `install_tokenizer`
    moves it in once the run is opened), and finds it in `run_dir/tokenizer` when resumed; `init_from`
    takes the model, tokenizer and label of that run, with fresh scorers.
    """
    if config.init_from is not None:
        source, tokenizer, _, label = load_translator(config.init_from)
        return PrunedTranslator(source.model, source.special_ids, config.pruning), tokenizer, label
    if config.scratch:
        folder = run_dir / TOKENIZER_FOLDER
        if (folder / "tokenizer_config.json").is_file():
            tokenizer = load_tokenizer(str(folder))
        else:
            tokenizer = train_tokenizer(train.sources + train.targets, staging, config.vocab_size,
                                        max(config.max_source_length, config.max_target_length),
                                        threads=torch.get_num_threads())
        model = build_scratch_model(config, tokenizer)
        label = f"marian-scratch-e{config.encoder_layers}d{config.decoder_layers}-{config.d_model}"
    else:
        tokenizer = load_tokenizer(config.model)
        model = load_pretrained(MarianMTModel, config.model)
        label = short_model_name(config.model)
    return PrunedTranslator(model, special_token_ids(tokenizer), config.pruning), tokenizer, label


def epoch_plan(pairs: EncodedPairs, config: MTConfig) -> list[list[list[int]]]:
    """The batches of every epoch (seeded per epoch), the last cut to the fraction `epochs` asks for."""
    epochs = math.ceil(config.epochs)
    fraction = config.epochs - (epochs - 1)
    sources, targets = pairs.source_lengths(), pairs.target_lengths()
    return plan_epochs(lambda seed: token_batches(sources, targets, config.max_tokens, shuffle=True, seed=seed),
                       config.seed, epochs, lambda steps: max(1, round(fraction * steps)))


@torch.no_grad()
def validation_loss(translator: PrunedTranslator, pairs: EncodedPairs, config: MTConfig, pad_id: int,
                    start_id: int) -> float:
    """Mean token cross-entropy (no smoothing) with hard pruning, as at inference (batches shared over ranks), on
    the device the translator is on."""
    was_training = translator.training
    translator.eval()
    device = model_device(translator)
    total, count = 0.0, 0
    for indices in share(token_batches(pairs.source_lengths(), pairs.target_lengths(), config.max_tokens,
                                       shuffle=False)):
        batch = on_device(collate_pairs(pairs, indices, pad_id, start_id), device)
        tokens = int((batch["labels"] != -100).sum())
        loss, _ = translator.loss(translator(batch), batch["labels"])
        total, count = total + float(loss) * tokens, count + tokens
    translator.train(was_training)
    total, count = sum_over_ranks([total, count])
    return total / max(count, 1)


def run_complete(run_dir: Path, config: MTConfig, metrics: dict[str, Any]) -> bool:
    """Whether `run_dir` (with these metrics.json `metrics`) holds the model of `config`'s last step."""
    saved = (run_dir / MODEL_FOLDER / "config.json").is_file() and (run_dir / SCORER_FILE).is_file()
    return saved and metrics["steps"] >= metrics["total_steps"]


def train_translation(config: MTConfig, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
                      keep_state: bool = False, grad_accum: int = 1, device: torch.device = CPU) -> dict[str, Any]:
    """Train `config` into `run_dir`, resuming an interrupted run; returns the metrics.

    Everything is validated (corpora, model or tokenizer, pruning layers) before the run directory is
    opened, so a bad input leaves nothing behind. A finished run returns its metrics; one whose model is
    gone is saved again from state.pt (kept with `keep_state`) or retrained. state.pt is removed at the
    end unless `keep_state`. A run directory that records other training data (`tsdtp.runs.training_data`)
    is refused. Each batch runs in `grad_accum` accumulation steps; under torchrun it is split over the
    processes, weighted by target tokens (`tsdtp.runs.distributed.process_group`). The translator (and the
    distillation teacher) train and validate on `device` (`tsdtp.runs.device.training_device`).
    """
    run_dir = Path(run_dir)
    source = training_data(config, data_dir)
    check_training_data(run_dir, source)
    seed_everything(config.seed)
    train_corpus, val_corpus = training_corpus(config, data_dir), validation_corpus(config, data_dir)
    with tempfile.TemporaryDirectory(prefix="tsdtp-tokenizer-") as staging:
        translator, tokenizer, label = prepare_model(config, run_dir, train_corpus, Path(staging))
        translator.to(device)
        teacher = (Teacher.load(config.teacher_run, translator.model.config.vocab_size).to(device)
                   if config.distill_weight else None)
        with open_run(run_dir, config.to_dict(), leftovers=STAGING_FOLDERS):
            record_training_data(run_dir, source)
            if any(Path(staging).iterdir()):
                tokenizer = _shared_tokenizer(Path(staging), run_dir / TOKENIZER_FOLDER, tokenizer)
            return _train_prepared(config, run_dir, translator, tokenizer, label, train_corpus, val_corpus,
                                   progress, keep_state, grad_accum, teacher)


def _shared_tokenizer(staged: Path, folder: Path, trained: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Install the tokenizer this run trained (rank 0 does, in a distributed run, where every rank trained the
    same one); a rank whose own differs from rank 0's is an error, as its model's vocabulary would be."""
    tokenizer = install_tokenizer(staged, folder) if is_main() else trained
    barrier()
    if not is_main() and load_tokenizer(str(folder)).get_vocab() != trained.get_vocab():
        raise CheckpointError(f"this process trained another tokenizer than rank 0 saved in {folder}; train the "
                              "scratch run's first epoch in one process, then resume it under torchrun")
    return tokenizer


def _train_prepared(config: MTConfig, run_dir: Path, translator: PrunedTranslator,
                    tokenizer: PreTrainedTokenizerBase, label: str, train_corpus: ParallelCorpus,
                    val_corpus: ParallelCorpus, progress: bool, keep_state: bool, grad_accum: int,
                    teacher: Teacher | None) -> dict[str, Any]:
    """Encode the corpora and run the training loop in the opened `run_dir` (distilling from `teacher` if any)."""
    train_pairs = encode_corpus(tokenizer, train_corpus, config.max_source_length, config.max_target_length)
    val_pairs = (encode_corpus(tokenizer, val_corpus.head(config.val_samples), config.max_source_length,
                               config.max_target_length) if config.val_samples else None)
    pad_id, start_id = tokenizer.pad_token_id, translator.model.config.decoder_start_token_id
    plan = epoch_plan(train_pairs, config)
    total_steps = sum(len(epoch) for epoch in plan)

    def step_loss(forward: Forward, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = on_device(collate_pairs(train_pairs, indices, pad_id, start_id), model_device(translator))
        output = forward(batch)
        if teacher is None:
            return translator.loss(output, batch["labels"], config.label_smoothing)
        return distilled_step(translator, output, batch, teacher, config)

    def target_tokens(indices: list[int]) -> int:
        return sum(len(train_pairs.target_ids[i]) for i in indices)

    def epoch_record(epoch: int, step: int, parts: dict[str, float]) -> dict[str, Any]:
        return {"epoch": epoch + 1, "step": step, "train_ce": parts.get("ce"),
                **_validate(translator, tokenizer, val_pairs, config, pad_id, start_id, progress)}

    def save_run(step: int, seconds: float, history: list[dict[str, Any]]) -> dict[str, Any]:
        save_translator(run_dir, translator, tokenizer, label)
        return {"task": config.task, "model": label, "method": config.pruning.method,
                "train_pairs": len(train_pairs), "val_split": val_corpus.split_label, "steps": step,
                "total_steps": total_steps, "train_seconds": round(seconds, 1),
                "threads": torch.get_num_threads(), "history": history, "final": history[-1]}

    hooks = RunHooks(step_loss, epoch_record, save_run, partial(run_complete, run_dir, config), target_tokens)
    return train_with_adamw(run_dir, translator, plan, config, hooks, description=f"mt-train {config.pruning.method}",
                            progress=progress, keep_state=keep_state, betas=(0.9, 0.98), grad_accum=grad_accum)


def distilled_step(translator: PrunedTranslator, output: TranslatorOutput, batch: dict[str, torch.Tensor],
                    teacher: Teacher, config: MTConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch with word-level distillation, and its parts (`ce` the cross-entropy, `kd` the KL)."""
    ce = token_cross_entropy(output.logits, batch["labels"], config.label_smoothing)
    task, kl = distilled_loss(ce, output.logits, teacher.logits(batch), batch["labels"], config.distill_weight,
                              config.distill_temperature)
    loss, parts = translator.add_pruning_penalty(task, output.engine)
    return loss, {**parts, "ce": float(ce.detach()), "kd": kl}


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
