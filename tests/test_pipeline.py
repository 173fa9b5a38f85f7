"""The papermill pipeline: every notebook runs with tiny parameters, runs are cached, failures are clear.

One tiny profile (SST-2, QNLI and WMT16 en-de, 16 training examples) is reproduced once per
module; the other tests reuse its run cache and reports.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.experiments import train_config
from tsdtp.cli.reproduce import add_reproduce_command, reproduce_command
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.pipeline.plan import Plan, Step, make_plan
from tsdtp.pipeline.progress import EVALUATE, KEPT, TRAIN
from tsdtp.pipeline.runner import PipelineError, adopt_runs, reproduce, rerun_runs
from tsdtp.pipeline.spec import notebook_parameters, project_root
from tsdtp.pipeline.staging import forget_runs, restore_later_rows
from tsdtp.runs import cache as run_cache
from tsdtp.runs.results import RESULT_COLUMNS
from tsdtp.runs.selection import is_selection_label

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
TINY = {"max_train_samples": 16, "max_eval_samples": 16, "speed_repeats": 1, "results_batch_size": 8, "threads": 1}
DENSE = {"task": "sst2", "method": "none", "epochs": 1, "evals": [{}, {"method": "general-dtp-posthoc", "k": 0.5},
                                                                  {"method": "topk"}, {"method": "reference-masking"}]}
MT_TINY = {"vocab_size": 300, "d_model": 32, "encoder_layers": 3, "decoder_layers": 1, "ffn_dim": 64, "lr": 0.003,
           "val_samples": 8, "num_beams": 2}
FIGURE_STEPS = [
    {"id": "heatmaps", "notebook": "02_token_keep_heatmaps.ipynb",
     "parameters": {"tasks": ["sst2", "wmt16"], "methods": ["ts-dtp", "general-dtp"], "k": 0.5, "n_examples": 2},
     "outputs": [{"figure": "keep_heatmaps_sst2", "caption": "Heatmaps."},
                 {"figure": "keep_heatmaps_wmt16", "caption": "Source words."},
                 {"figure": "layer_keep", "caption": "Keep."}, {"figure": "token_kinds", "caption": "Kinds."}]},
    {"id": "efficiency", "notebook": "03_efficiency.ipynb",
     "outputs": [{"figure": "tradeoff", "caption": "Trade-off."}, {"figure": "realization", "caption": "Realized."},
                 {"figure": "memory", "caption": "Memory.", "optional": True}]},
    {"id": "results", "notebook": "04_results.ipynb",
     "outputs": [{"table": "results_table.md", "caption": "Table."},
                 {"table": "results_table.tex", "caption": "TeX."}]},
    {"id": "comparison", "notebook": "06_comparison.ipynb", "parameters": {"keep_points": [0.8], "flops_points": [0.8]},
     "outputs": [{"figure": "pareto_seeds", "caption": "Seeds."},
                 {"figure": "differences", "caption": "Differences.", "optional": True},
                 {"table": "comparison.md", "caption": "Comparison.", "optional": True}]},
    {"id": "mt-comparison", "notebook": "09_translation_comparison.ipynb",
     "parameters": {"systems": {"TS-DTP": ["ts-dtp", None], "General DTP": ["general-dtp", None],
                                "dense": ["none", None]},
                    "pairs": [["TS-DTP", "General DTP"], ["TS-DTP", "dense"]], "flops_points": [0.7], "resamples": 20},
     "outputs": [{"figure": "mt_matched", "caption": "Matched."}, {"table": "mt_settings.md", "caption": "Settings."},
                 {"table": "mt_comparison.md", "caption": "Matched table."}]},
]


def write_spec(folder: Path, profiles: dict, notebooks: Path = NOTEBOOKS) -> Path:
    """A pipeline spec in `folder` (its root) using `notebooks`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "notebooks_dir": str(notebooks), "profiles": profiles}))
    return path


def tiny_profiles() -> dict:
    train = [
        {"id": "sst2-none", "notebook": "01_train.ipynb", "parameters": DENSE},
        {"id": "sst2-ts-dtp", "notebook": "01_train.ipynb",
         "parameters": {"task": "sst2", "method": "ts-dtp", "k": 0.5, "epochs": 1, "init_from": "sst2-none",
                        "evals": [{}, {"k": 0.0}]}},
        {"id": "sst2-general-dtp", "notebook": "01_train.ipynb",
         "parameters": {"task": "sst2", "method": "general-dtp", "k": 0.5, "gamma": 0.0, "epochs": 1,
                        "init_from": "sst2-none"}},
        {"id": "qnli-none", "notebook": "01_train.ipynb",
         "parameters": {"task": "qnli", "method": "none", "epochs": 1, "evals": [{}, {"method": "topk"}]}},
        {"id": "wmt16-none", "notebook": "05_translation.ipynb",
         "parameters": {**MT_TINY, "method": "none", "epochs": 1, "evals": [{}, {"method": "topk"}]}},
        {"id": "wmt16-ts-dtp", "notebook": "05_translation.ipynb",
         "parameters": {**MT_TINY, "method": "ts-dtp", "k": 0.5, "epochs": 1, "init_from": "wmt16-none"}},
        {"id": "wmt16-general-dtp", "notebook": "05_translation.ipynb",
         "parameters": {**MT_TINY, "method": "general-dtp", "k": 0.5, "epochs": 1, "init_from": "wmt16-none"}},
    ]
    return {
        "tiny": {"description": "Tiny test profile.", "out_dir": "reports", "defaults": TINY,
                 "steps": [train, FIGURE_STEPS]},
        "again": {"out_dir": "again", "defaults": TINY,
                  "steps": [{"id": "sst2-none", "notebook": "01_train.ipynb", "parameters": {**DENSE, "evals": [{}]}}]},
    }


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, glue_dir):
    """The tiny profile reproduced once, with a bench.csv from an earlier benchmark already in reports/data."""
    root = tmp_path_factory.mktemp("project")
    spec = write_spec(root, tiny_profiles())
    tables = root / "reports" / "data"
    tables.mkdir(parents=True)
    pd.DataFrame({"task": ["sst2", "sst2"], "method": ["none", "topk"], "k": [1.0, 1.0], "batch_size": [8, 8],
                  "peak_activation_bytes": [3 * 2**20, 2**20]}).to_csv(tables / "bench.csv", index=False)
    bench_mtime = (tables / "bench.csv").stat().st_mtime_ns
    manifest = reproduce("tiny", spec_path=spec, data_dir=glue_dir, log=lambda line: None)
    return root, spec, json.loads(manifest.read_text()), bench_mtime


def test_every_notebook_runs_and_writes_its_declared_outputs(reproduced):
    root, spec, manifest, bench_mtime = reproduced
    reports = root / "reports"
    plan = make_plan("tiny", spec)
    for step in plan.steps:
        for output in step.outputs:
            for name in output.files():
                assert (reports / name).is_file(), name
        executed = nbformat.read(reports / "notebooks" / plan.executed_name(step), as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors and executed.metadata["papermill"]["parameters"]
    assert not (reports / ".staging").exists()
    assert (reports / "data" / "bench.csv").stat().st_mtime_ns == bench_mtime
    assert (reports / "figures" / "memory.png").is_file()
    training = nbformat.read(reports / "notebooks" / "01_train-sst2-none.ipynb", as_version=4)
    progress = "".join(o.get("text", "") for c in training.cells for o in c.get("outputs", [])
                       if o.get("name") == "stderr")
    assert "epoch 1/1" in progress and "100%" in progress and "\r" not in progress
    images = [o for c in training.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the training notebook's figures are drawn inline, not only as their text repr"
    assert {s["id"]: s["outputs"] for s in manifest["steps"]}["efficiency"][-1] == "figures/memory.pdf"


def clone_reports(root: Path, spec: Path, folder: Path, profiles: dict | None = None) -> Path:
    """A project in `folder` with a copy of `root`'s reports/ (data included) and its spec, but no runs/."""
    shutil.copytree(root / "reports", folder / "reports")
    if profiles is None:
        shutil.copy(spec, folder / "pipeline.yaml")
        return folder / "pipeline.yaml"
    return write_spec(folder, profiles)


def test_reports_are_made_again_from_reports_data_alone_without_runs(reproduced, tmp_path, capfd):
    root, spec, manifest, _ = reproduced
    clone = clone_reports(root, spec, tmp_path / "clone")
    reports = tmp_path / "clone" / "reports"
    outputs = [name for step in make_plan("tiny", clone).steps for output in step.outputs for name in output.files()]
    for name in outputs:
        (reports / name).write_bytes(b"stale")
    lines: list[str] = []
    stream = io.StringIO()
    again = json.loads(reproduce("tiny", spec_path=clone, log=lines.append, figures_only=True, stream=stream)
                       .read_text())
    assert not (tmp_path / "clone" / "runs").exists()
    for name in outputs:
        assert (reports / name).read_bytes() != b"stale", name
    assert (reports / "figures" / "keep_heatmaps_wmt16.png").read_bytes()[:4] == b"\x89PNG"
    steps = {s["id"]: s for s in again["steps"]}
    assert again["figures_only"] and again["command"] == "tsdtp reproduce --profile tiny --figures-only"
    before = {s["id"]: s for s in manifest["steps"]}
    assert steps["sst2-none"] == {**before["sst2-none"], "kept": True}
    assert steps["heatmaps"]["action"] == "run" and not steps["heatmaps"]["pending"]
    assert lines[0].startswith("plan: profile tiny, 12 steps") and "5 without training" in lines[0]
    assert any(line.startswith("   8. heatmaps") and "~" in line for line in lines)
    assert "7 training step(s) not run" in "\n".join(lines)
    assert sum(line.startswith("    done in") for line in lines) == 5 and "figure(s) not regenerated" not in lines[-1]
    assert "    " + str(Path("reports/.staging/tables/results_table.md")) in stream.getvalue()
    assert "without encryption" not in capfd.readouterr().err
    assert "This run (`tsdtp reproduce --profile tiny --figures-only`)" in (reports / "README.md").read_text()


def test_until_runs_the_training_steps_up_to_one_then_every_step_that_trains_nothing(reproduced, tmp_path):
    root, spec, _, _ = reproduced
    clone = clone_reports(root, spec, tmp_path / "clone")
    (tmp_path / "clone" / "runs").symlink_to(root / "runs")
    lines: list[str] = []
    again = json.loads(reproduce("tiny", spec_path=clone, log=lines.append, until="sst2-ts-dtp").read_text())
    steps = {s["id"]: s for s in again["steps"]}
    assert [steps[i]["action"] for i in ("sst2-none", "sst2-ts-dtp", "heatmaps", "mt-comparison")] == [
        "evaluate", "evaluate", "run", "run"]
    later = ("sst2-general-dtp", "qnli-none", "wmt16-none", "wmt16-ts-dtp", "wmt16-general-dtp")
    assert all(steps[i]["kept"] for i in later) and "5 training step(s) not run" in "\n".join(lines)
    assert again["command"] == "tsdtp reproduce --profile tiny --until sst2-ts-dtp" and again["until"] == "sst2-ts-dtp"
    gallery = (tmp_path / "clone" / "reports" / "README.md").read_text()
    assert "(`tsdtp reproduce --profile tiny --until sst2-ts-dtp`) ran the training steps up to `sst2-ts-dtp`" in (
        gallery)
    with pytest.raises(ConfigError, match="'heatmaps' is not a training step of profile tiny; its training steps are "
                                          "sst2-none, sst2-ts-dtp,"):
        reproduce("tiny", spec_path=clone, until="heatmaps", log=lambda line: None)
    with pytest.raises(ConfigError, match="--until sst2-none has nothing to bound"):
        reproduce("tiny", spec_path=clone, until="sst2-none", figures_only=True, log=lambda line: None)


def test_a_window_runs_the_training_steps_inside_it_and_drops_the_results_of_runs_whose_settings_changed(
        reproduced, tmp_path):
    root, spec, manifest, _ = reproduced
    clone = clone_reports(root, spec, tmp_path / "clone")
    (tmp_path / "clone" / "runs").symlink_to(root / "runs")
    data = tmp_path / "clone" / "reports" / "data"
    results = pd.read_csv(data / "results.csv")
    stale = results.iloc[:1].assign(run_dir="runs/sst2-general-dtp-000000000000")
    elsewhere = results.iloc[:1].assign(run_dir="elsewhere/sst2-none-111111111111", model="another model")
    pd.concat([results, stale, elsewhere]).to_csv(data / "results.csv", index=False)
    (data / "traces" / "sst2-general-dtp-000000000000").mkdir()
    (data / "traces" / "sst2-general-dtp-000000000000" / "general-dtp_k0.5_g0.parquet").write_bytes(b"stale")
    last = json.loads((data.parent / "manifest.json").read_text())
    last["steps"] = [{**s, "run_dir": "runs/sst2-general-dtp-000000000000"} if s["id"] == "sst2-general-dtp" else s
                     for s in last["steps"]]
    (data.parent / "manifest.json").write_text(json.dumps(last))
    lines: list[str] = []
    again = json.loads(reproduce("tiny", spec_path=clone, log=lines.append, start="qnli-none",
                                 until="wmt16-none").read_text())
    steps = {s["id"]: s for s in again["steps"]}
    assert [steps[i]["action"] for i in ("qnli-none", "wmt16-none", "heatmaps")] == ["evaluate", "evaluate", "run"]
    kept = ("sst2-none", "sst2-ts-dtp", "sst2-general-dtp", "wmt16-ts-dtp", "wmt16-general-dtp")
    assert all(steps[i]["kept"] for i in kept) and "5 training step(s) not run" in "\n".join(lines)
    assert again["command"] == "tsdtp reproduce --profile tiny --from qnli-none --until wmt16-none"
    assert (again["from"], again["until"]) == ("qnli-none", "wmt16-none")
    assert "ran the training steps from `qnli-none` and up to `wmt16-none`; the others" in (
        tmp_path / "clone" / "reports" / "README.md").read_text()
    published = pd.read_csv(data / "results.csv")
    assert "runs/sst2-general-dtp-000000000000" not in set(published["run_dir"])
    assert "elsewhere/sst2-none-111111111111" in set(published["run_dir"]), "rows no reproduce made are left alone"
    assert not (data / "traces" / "sst2-general-dtp-000000000000").exists()
    assert any("1 run(s) that the last reproduce made for steps whose settings have changed since: "
               "runs/sst2-general-dtp-000000000000" in line for line in lines)
    before = {s["id"]: s["run_dir"] for s in manifest["steps"]}
    assert (published["run_dir"] == before["sst2-ts-dtp"]).sum() == (results["run_dir"] == before["sst2-ts-dtp"]).sum()


def test_a_step_in_the_window_leaves_the_results_of_a_kept_step_that_shares_its_run(tmp_path):
    def step(step_id: str, run: str) -> Step:
        return Step(step_id, tmp_path / "08.ipynb", {}, frozenset(), run_dir=tmp_path / "runs" / run)
    plan = Plan("p", "", tmp_path / "pipeline.yaml", tmp_path, tmp_path / "reports", tmp_path / "runs", None,
                (step("ts", "ts-1"), step("ts-tilt", "ts-1"), step("general", "general-1"), step("seed1", "ts-2")))
    actions = {"ts": KEPT, "ts-tilt": EVALUATE, "general": EVALUATE, "seed1": TRAIN}
    assert rerun_runs(plan, actions) == {"runs/general-1", "runs/ts-2"}
    assert rerun_runs(plan, {**actions, "ts": EVALUATE}) == {"runs/ts-1", "runs/general-1", "runs/ts-2"}


def test_a_window_is_checked_before_anything_runs(reproduced, tmp_path):
    root, spec, _, _ = reproduced
    clone = clone_reports(root, spec, tmp_path / "clone")
    with pytest.raises(ConfigError, match="step wmt16-ts-dtp needs the run of wmt16-none \\(init_from\\), which is "
                                          "not in the run cache runs; start earlier: --from wmt16-none"):
        reproduce("tiny", spec_path=clone, start="wmt16-ts-dtp", log=lambda line: None)
    with pytest.raises(ConfigError, match="--from 'wmt16-none' comes after --until 'sst2-none'"):
        reproduce("tiny", spec_path=clone, start="wmt16-none", until="sst2-none", log=lambda line: None)
    with pytest.raises(ConfigError, match="--from 'results' is not a training step of profile tiny"):
        reproduce("tiny", spec_path=clone, start="results", log=lambda line: None)
    assert not (tmp_path / "clone" / "reports" / ".staging").exists()


def test_a_figure_without_its_data_is_listed_and_the_others_are_drawn(reproduced, tmp_path):
    root, spec, manifest, _ = reproduced
    heatmaps = {**FIGURE_STEPS[0], "outputs": FIGURE_STEPS[0]["outputs"][:2]}
    clone = clone_reports(root, spec, tmp_path / "clone", {"tiny": {"steps": [heatmaps]}})
    reports = tmp_path / "clone" / "reports"
    translation = {s["id"]: s for s in manifest["steps"]}["wmt16-ts-dtp"]["run_dir"]
    shutil.rmtree(reports / "data" / "traces" / Path(translation).name)
    (reports / "figures" / "keep_heatmaps_wmt16.png").write_bytes(b"last good")
    (reports / "figures" / "keep_heatmaps_sst2.png").write_bytes(b"stale")
    with pytest.raises(PipelineError, match="could not draw keep_heatmaps_wmt16: no keep traces .* wmt16 ts-dtp"):
        reproduce("tiny", spec_path=clone, log=lambda line: None)
    lines: list[str] = []
    again = json.loads(reproduce("tiny", spec_path=clone, log=lines.append, figures_only=True).read_text())
    reason = "no keep traces in reports/data/traces for 1 evaluation(s): wmt16 ts-dtp k=0.5"
    assert lines[-4].startswith("3 figure(s) not regenerated: their data is not in reports/data; they await")
    assert lines[-3:] == [f"  {name}: {reason}" for name in ("keep_heatmaps_wmt16", "layer_keep", "token_kinds")]
    assert again["steps"][0]["pending"] == {name: reason for name in ("keep_heatmaps_wmt16", "layer_keep",
                                                                      "token_kinds")}
    assert (reports / "figures" / "keep_heatmaps_wmt16.png").read_bytes() == b"last good"
    assert (reports / "figures" / "keep_heatmaps_sst2.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((reports / "figures").glob("*.pending"))
    assert "**Not drawn again by the last run:** no keep traces" in (reports / "README.md").read_text()


def test_staging_forgets_the_rows_traces_and_translations_of_the_runs_a_reproduce_evaluates_again(tmp_path):
    staging = tmp_path / ".staging"
    for run in ("runs/a", "runs/b"):
        for folder in ("traces", "hypotheses"):
            (staging / "data" / folder / Path(run).name).mkdir(parents=True)
    pd.DataFrame({"method": ["ts-dtp", "ts-dtp", "none"], "device": ["cpu x1", "cpu x2", "cpu x1"],
                  "run_dir": ["runs/a", "runs/a", "runs/b"]}).to_csv(staging / "data" / "results.csv", index=False)
    forget_runs(staging, {"runs/a"})
    assert pd.read_csv(staging / "data" / "results.csv")["run_dir"].tolist() == ["runs/b"]
    for folder in ("traces", "hypotheses"):
        assert sorted(p.name for p in (staging / "data" / folder).iterdir()) == ["b"]


def test_a_teacher_rerun_alone_leaves_the_row_of_the_later_dense_run_that_shares_its_key(tmp_path):
    def rows(*runs_and_metrics: tuple[str, float]) -> pd.DataFrame:
        return pd.DataFrame([{"task": "qnli", "method": "none", "k": 1.0, "seed": 0, "metric": metric,
                              "run_dir": run} for run, metric in runs_and_metrics])
    published, staging = tmp_path / "results.csv", tmp_path / ".staging"
    (staging / "data").mkdir(parents=True)
    rows(("runs/extra", 75.9)).to_csv(published, index=False)
    rows(("runs/teacher", 71.2)).to_csv(staging / "data" / "results.csv", index=False)
    order = {"runs/teacher": 0, "runs/extra": 3}
    assert restore_later_rows(staging, published, order, kept={"runs/extra"}) == ["runs/extra"]
    assert pd.read_csv(staging / "data" / "results.csv")[["run_dir", "metric"]].values.tolist() == [
        ["runs/extra", 75.9]]
    rows(("runs/teacher", 71.2)).to_csv(staging / "data" / "results.csv", index=False)
    assert restore_later_rows(staging, published, order, kept=set()) == [], "the dense run reran too: its row stands"
    assert restore_later_rows(staging, published, {"runs/teacher": 5, "runs/extra": 3}, {"runs/extra"}) == [], \
        "a later step's row wins over a kept earlier one"
    assert pd.read_csv(staging / "data" / "results.csv")["run_dir"].tolist() == ["runs/teacher"]


def test_figures_only_and_force_are_refused_together(tmp_path):
    spec = write_spec(tmp_path, tiny_profiles())
    with pytest.raises(ConfigError, match="--figures-only trains nothing"):
        reproduce("tiny", force=True, spec_path=spec, figures_only=True, log=lambda line: None)


def test_results_csv_has_the_contracted_columns_and_a_row_per_evaluation(reproduced):
    root, *_ = reproduced
    results = pd.read_csv(root / "reports" / "data" / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    settings = set(zip(results["task"], results["method"], results["k"]))
    assert settings == {("sst2", "none", 1.0), ("sst2", "general-dtp-posthoc", 0.5), ("sst2", "topk", 1.0),
                        ("sst2", "reference-masking", 1.0), ("sst2", "ts-dtp", 0.5), ("sst2", "ts-dtp", 0.0),
                        ("sst2", "general-dtp", 0.5), ("qnli", "none", 1.0), ("qnli", "topk", 1.0),
                        ("wmt16", "none", 1.0), ("wmt16", "topk", 1.0), ("wmt16", "ts-dtp", 0.5),
                        ("wmt16", "general-dtp", 0.5)}
    assert (results["n_eval"] > 0).all()
    translation = results[results["task"] == "wmt16"]
    assert set(translation["metric_name"]) == {"bleu"} and len(translation) == 2 * 4
    captions = translation["eval_split"].str.startswith("multi30k")
    assert captions.sum() == 4 and set(translation.loc[~captions, "eval_split"]) == {"newstest2016 (news)"}
    speed_measured = results[(results["task"] != "wmt16")]["speedup"].tolist() + \
        translation.loc[captions, "speedup"].tolist()
    assert pd.notna(speed_measured).all()
    table = pd.read_csv(root / "reports" / "tables" / "results_table.csv")
    assert len(table) == len(results)
    assert table.set_index(["task", "method"]).loc[("sst2", "none"), "memory_mb"] == 3.0


def test_manifest_records_versions_data_checksums_parameters_and_wall_times(reproduced, glue_dir):
    root, _, manifest, _ = reproduced
    assert manifest["profile"] == "tiny" and manifest["packages"]["torch"] and manifest["packages"]["papermill"]
    assert set(manifest["git"]) == {"commit", "dirty"}
    files = {f["path"]: f["sha256"] for f in manifest["data"]["files"]}
    wmt = {f"wmt16_en_de/multi30k_task1/{split}.{lang}.gz" for split in ("train", "val", "test_2016_flickr")
           for lang in ("en", "de")} | {"wmt16_en_de/newstest/newstest2016.en", "wmt16_en_de/newstest/newstest2016.de"}
    assert set(files) == {"glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "glue/QNLI/dev.tsv"} | wmt
    for name, digest in files.items():
        assert digest == hashlib.sha256((glue_dir / name).read_bytes()).hexdigest()
    steps = {s["id"]: s for s in manifest["steps"]}
    assert list(steps) == ["sst2-none", "sst2-ts-dtp", "sst2-general-dtp", "qnli-none", "wmt16-none",
                           "wmt16-ts-dtp", "wmt16-general-dtp", "heatmaps", "efficiency", "results", "comparison",
                           "mt-comparison"]
    assert all(s["wall_s"] > 0 for s in steps.values())
    assert steps["sst2-ts-dtp"]["parameters"]["init_from"] == steps["sst2-none"]["run_dir"]
    assert steps["wmt16-ts-dtp"]["parameters"]["init_from"] == steps["wmt16-none"]["run_dir"]
    assert Path(steps["wmt16-ts-dtp"]["run_dir"]).name.startswith("wmt16-ts-dtp-")
    assert steps["sst2-none"]["cached"] is False and steps["heatmaps"]["cached"] is None
    assert (steps["sst2-none"]["action"], steps["heatmaps"]["action"]) == ("train", "run")
    assert manifest["figures_only"] is False and all(not s["pending"] for s in steps.values())


def test_gallery_shows_every_figure_with_caption_and_command(reproduced):
    root, *_ = reproduced
    gallery = (root / "reports" / "README.md").read_text()
    for stem, caption in (("keep_heatmaps_sst2", "Heatmaps."), ("tradeoff", "Trade-off."), ("memory", "Memory.")):
        assert f"![{caption}](figures/{stem}.png)" in gallery
    assert gallery.count("`tsdtp reproduce --profile tiny`") >= 7
    assert "| sst2 | sst2 dev | ts-dtp | 0.50 |" in gallery


def test_trained_runs_are_cached_by_config_hash_and_not_retrained(reproduced, glue_dir):
    root, spec, manifest, _ = reproduced
    dense = {s["id"]: s for s in manifest["steps"]}["sst2-none"]
    run_dir = root / dense["run_dir"]
    config = run_cache.read_run_config(run_dir)
    assert run_dir.name == f"sst2-none-{run_cache.config_hash(config)[:12]}"
    assert run_cache.run_finished(run_dir)
    before = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    again = json.loads(reproduce("again", spec_path=spec, data_dir=glue_dir, log=lambda line: None).read_text())
    assert again["steps"][0]["cached"] is True and again["steps"][0]["run_dir"] == dense["run_dir"]
    assert (run_dir / "checkpoint.pt").stat().st_mtime_ns == before


def llm_profiles(model: Path) -> dict:
    """A dense LoRA run of a tiny Llama, a ts-dtp run started from and distilled from it, and the results table; both
    hold out the same selection split."""
    llm = {"task": "sst2", "model": str(model), "max_length": 48, "max_train_samples": 16, "max_eval_samples": 8,
           "threads": 1, "selection_fraction": 0.25}
    steps = [
        {"id": "llm-none", "notebook": "08_llm_classify.ipynb", "parameters": {**llm, "method": "none"}},
        {"id": "llm-ts-dtp", "notebook": "08_llm_classify.ipynb",
         "parameters": {**llm, "method": "ts-dtp", "k": 0.5, "init_from": "llm-none", "teacher": "llm-none",
                        "keep_ramp": 0.25, "hard_ratio": 0.3, "evals": [{}, {"k": 1.0}]}},
        FIGURE_STEPS[2],
    ]
    return {"llm": {"out_dir": "reports", "steps": steps}}


def test_llm_steps_train_into_their_own_cached_runs_and_join_the_results(tmp_path, glue_dir, tiny_llama,
                                                                          monkeypatch):
    spec = write_spec(tmp_path, llm_profiles(tiny_llama))
    manifest = json.loads(reproduce("llm", spec_path=spec, data_dir=glue_dir, log=lambda line: None).read_text())
    steps = {s["id"]: s for s in manifest["steps"]}
    dense_dir, pruned_dir = (tmp_path / steps[name]["run_dir"] for name in ("llm-none", "llm-ts-dtp"))
    assert dense_dir.name.startswith("llm-sst2-none-") and pruned_dir.name.startswith("llm-sst2-ts-dtp-")
    pruned = run_cache.read_run_config(pruned_dir)
    assert isinstance(pruned, LlmTrainConfig) and run_cache.run_finished(pruned_dir)
    assert pruned.teacher == pruned.init_from == f"runs/{dense_dir.name}"
    monkeypatch.chdir(tmp_path)  # the run references are relative to the project root
    assert pruned_dir.name == f"llm-sst2-ts-dtp-{run_cache.config_hash(pruned)[:12]}"
    assert len(list((dense_dir / "teacher_cache").glob("*.pt"))) == 1
    results = pd.read_csv(tmp_path / "reports" / "data" / "results.csv")
    selection = results["eval_split"].map(is_selection_label)
    for rows in (results[selection], results[~selection]):
        assert sorted(zip(rows["method"], rows["k"])) == [("none", 1.0), ("ts-dtp", 0.5), ("ts-dtp", 1.0)]
    assert set(results["model"]) == {f"{tiny_llama.name} LoRA r8 (16 train)"} and set(results["n_eval"]) == {8}
    assert (tmp_path / "reports" / "tables" / "results_table.md").is_file()
    again = json.loads(reproduce("llm", spec_path=spec, data_dir=glue_dir, log=lambda line: None).read_text())
    assert [s["cached"] for s in again["steps"][:2]] == [True, True]


def test_an_llm_step_cannot_start_from_a_classification_run(tmp_path, tiny_llama):
    profiles = llm_profiles(tiny_llama)
    steps = profiles["llm"]["steps"]
    steps.insert(0, {"id": "sst2-none", "notebook": "01_train.ipynb", "parameters": DENSE})
    steps[2]["parameters"] = {**steps[2]["parameters"], "init_from": "sst2-none"}
    with pytest.raises(ConfigError, match="init_from 'sst2-none' is a TrainConfig run; llm-ts-dtp needs a "
                                          "LlmTrainConfig run"):
        make_plan("llm", write_spec(tmp_path, profiles))


def test_config_hash_ignores_number_types_and_follows_init_from(reproduced):
    root, _, manifest, _ = reproduced
    steps = {s["id"]: s for s in manifest["steps"]}
    pruned = run_cache.read_run_config(root / steps["sst2-ts-dtp"]["run_dir"])
    parent = run_cache.read_run_config(root / steps["sst2-none"]["run_dir"])
    cwd = os.getcwd()
    os.chdir(root)
    try:
        resolved = run_cache.config_hash(pruned)
    finally:
        os.chdir(cwd)
    assert resolved == run_cache.config_hash(pruned, run_cache.config_hash(parent))
    assert resolved == steps["sst2-ts-dtp"]["config_hash"]
    moved = TrainConfig.from_dict({**pruned.to_dict(), "init_from": "elsewhere/dense"})
    assert run_cache.config_hash(moved, run_cache.config_hash(parent)) == resolved
    assert run_cache.config_hash(train_config(epochs=2)) == \
        run_cache.config_hash(train_config(epochs=2.0))
    assert run_cache.config_hash(train_config(k=0.5)) != \
        run_cache.config_hash(train_config())


def test_finished_runs_are_adopted_into_the_cache_after_checking_their_config(reproduced, tmp_path):
    root, spec, manifest, _ = reproduced
    source = root / {s["id"]: s for s in manifest["steps"]}["sst2-none"]["run_dir"]
    elsewhere = tmp_path / "trained" / "sst2-none"
    elsewhere.parent.mkdir()
    os.symlink(source, elsewhere)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="epochs"):
        run_cache.adopt_run(elsewhere, cache, expected=train_config(epochs=2.0))
    with pytest.raises(CheckpointError, match="not a finished run"):
        run_cache.adopt_run(tmp_path, cache)
    copy = tmp_path / "trained" / "copy"
    copy.mkdir()
    for name in ("config.json", "metrics.json", "checkpoint.pt"):
        (copy / name).write_bytes((source / name).read_bytes())
    adopted = adopt_runs("again", copy.parent, spec, runs_root=cache)
    target = adopted["sst2-none"]
    assert target.is_symlink() and target.resolve() == copy.resolve()
    assert target == run_cache.run_cache_dir(run_cache.read_run_config(copy), cache)
    assert run_cache.adopt_run(copy, cache) == target


def test_force_retrains_and_a_run_dir_with_another_finished_config_is_refused(reproduced, tmp_path, glue_dir):
    root, _, manifest, _ = reproduced
    source = root / {s["id"]: s for s in manifest["steps"]}["sst2-none"]["run_dir"]
    config = run_cache.read_run_config(source)
    with pytest.raises(CheckpointError, match="another config"):
        run_cache.ensure_trained(train_config(k=0.3, max_train_samples=16), source, str(glue_dir))
    link = tmp_path / "adopted"
    os.symlink(source, link)
    before = (source / "checkpoint.pt").stat().st_mtime_ns
    metrics, trained = run_cache.ensure_trained(config, link, str(glue_dir), force=True, progress=False)
    assert trained and not link.is_symlink() and run_cache.run_finished(link) and metrics["steps"] == 1
    assert (source / "checkpoint.pt").stat().st_mtime_ns == before


def test_the_repository_spec_is_valid_and_matches_the_documented_runs():
    for profile in ("quick", "full"):
        plan = make_plan(profile, REPO / "pipeline.yaml")
        for step in plan.steps:
            assert set(step.parameters) <= set(papermill.inspect_notebook(str(step.notebook)))
        assert {o.name for s in plan.steps for o in s.outputs} >= {"keep_heatmaps_sst2", "tradeoff", "results_table.md"}
    quick = make_plan("quick", REPO / "pipeline.yaml")
    limits = {"sst2": 256, "qnli": 256, "wmt16": 2000}
    assert all(s.config.max_train_samples <= limits[s.config.task] for s in quick.steps if s.config is not None)
    assert {s.config.task for s in quick.steps if s.config is not None} == set(limits)
    full = {s.id: s for s in make_plan("full", REPO / "pipeline.yaml").steps}
    assert full["sst2-none"].config == TrainConfig(task="sst2", epochs=2.0, selection_fraction=0.02)
    assert full["qnli-none"].config == TrainConfig(task="qnli", epochs=3.0, selection_fraction=0.15)
    pruned = full["sst2-ts-dtp-t0.6-s1"].config
    assert pruned.init_from == pruned.teacher == "runs/" + full["sst2-none"].run_dir.name
    assert (pruned.epochs, pruned.pruning.k, pruned.pruning.keep_target, pruned.seed) == (1.0, 0.5, 0.6, 1)
    assert (pruned.hard_ratio, pruned.pruning.keep_ramp, pruned.rank_weight) == (0.3, 0.25, 0.01)
    assert full["qnli-general-dtp-t0.6-s0"].config.pruning.gamma == 0.0
    for task in ("sst2", "qnli"):
        for method in ("ts-dtp", "general-dtp", "topk"):
            assert {f"{task}-{method}-t{target}-s0" for target in (0.7, 0.6, 0.5, 0.4)} <= set(full)
            assert {f"{task}-{method}-t0.6-s{seed}" for seed in (1, 2)} <= set(full)
        assert {f"{task}-dense-extra-s{seed}" for seed in (0, 1, 2)} <= set(full)
        recipe = {(s.config.epochs, s.config.teacher, s.config.selection_fraction) for s in full.values()
                  if isinstance(s.config, TrainConfig) and s.config.task == task and s.config.init_from is not None}
        assert len(recipe) == 1  # every compared method, the dense reference included, gets the same recipe
    for profile, examples in (("quick", 16), ("full", 2000)):
        llm = {s.id: s.config for s in make_plan(profile, REPO / "pipeline.yaml").steps
               if isinstance(s.config, LlmTrainConfig)}
        assert {"llm-sst2-none", "llm-sst2-ts-dtp"} <= set(llm)
        assert {config.max_train_samples for config in llm.values()} == {examples}
        pruned = llm["llm-sst2-ts-dtp"]
        assert pruned.teacher is not None and pruned.teacher == pruned.init_from
        assert (pruned.pruning.keep_ramp, pruned.hard_ratio) == (0.25, 0.3)
    small = make_plan("compare-small", REPO / "pipeline.yaml")
    assert all(s.config.max_train_samples <= 4000 for s in small.steps if s.config is not None)
    dense_mt = full["wmt16-dense"].config
    assert (dense_mt.epochs, dense_mt.init_from, dense_mt.pruning.method, dense_mt.d_model) == (7.0, None, "none", 256)
    for step_id in ("wmt16-none", "wmt16-ts-dtp-k0.5", "wmt16-general-dtp-k0.5"):
        config = full[step_id].config
        assert config.init_from == "runs/" + full["wmt16-dense"].run_dir.name
        assert (config.epochs, config.lr) == (3.0, 2e-4)
    for step_id in ("wmt16-ts-dtp-k0.5", "wmt16-general-dtp-k0.5"):
        config = full[step_id].config
        assert (config.pruning.k, config.pruning.keep_target, config.hard_ratio) == (0.5, 0.6, 0.67)
    assert full["wmt16-general-dtp-k0.5"].config.pruning.gamma == 0.0
    assert full["wmt16-ts-dtp-k0.5"].config.pruning.gamma == 0.5
    compare_mt = make_plan("compare-mt", REPO / "pipeline.yaml").steps
    assert all(step.config_hash == full[step.id].config_hash for step in compare_mt if step.config is not None)
    assert {"mt-comparison", "heatmaps"} <= {step.id for step in compare_mt}
    for profile in ("quick", "full"):
        steps = {step.id: step for step in make_plan(profile, REPO / "pipeline.yaml").steps}
        assert steps["llm-prefill"].figures_only_parameters == {"measure": False, "trace_tokens": False}
        assert "mt-comparison" in steps


def test_every_notebook_has_one_parameters_cell_that_papermill_reads():
    expected = {"01_train.ipynb": {"task", "model", "method", "k", "gamma", "epochs", "max_train_samples", "seed",
                                   "run_dir", "data_dir", "max_eval_samples", "init_from", "keep_target", "traces_dir",
                                   "progress"},
                "02_token_keep_heatmaps.ipynb": {"results_csv", "traces_dir", "figures_dir", "tasks", "methods", "k"},
                "03_efficiency.ipynb": {"results_csv", "bench_csv", "figures_dir"},
                "04_results.ipynb": {"results_csv", "bench_csv", "tables_dir"},
                "05_translation.ipynb": {"method", "k", "gamma", "keep_target", "epochs", "lr", "init_from",
                                         "run_dir", "data_dir", "evals", "splits", "results_csv", "traces_dir",
                                         "hypotheses_dir",
                                         "progress"},
                "07_llm_prefill.ipynb": {"model_id", "measure", "lengths", "few_shot", "passages", "speed_repeats",
                                         "data_dir", "results_csv", "figures_dir"},
                "08_llm_classify.ipynb": {"task", "model", "method", "k", "gamma", "init_from", "teacher", "keep_ramp",
                                          "hard_ratio", "run_dir", "data_dir", "evals", "results_csv", "progress"},
                "09_translation_comparison.ipynb": {"results_csv", "hypotheses_dir", "data_dir", "figures_dir",
                                                    "tables_dir", "split", "systems", "pairs", "flops_points"}}
    for name, parameters in expected.items():
        assert parameters <= notebook_parameters(NOTEBOOKS / name)


def test_the_notebook_generator_writes_the_committed_notebooks():
    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "scripts" / "make_notebooks.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert set(generator.NOTEBOOKS) == {path.name for path in NOTEBOOKS.glob("*.ipynb")}
    for name, cells in generator.NOTEBOOKS.items():
        built = [(cell.cell_type, cell.source) for cell in generator.build(cells).cells]
        committed = [(cell.cell_type, cell.source) for cell in nbformat.read(NOTEBOOKS / name, as_version=4).cells]
        assert built == committed, f"{name} differs from scripts/make_notebooks.py: edit the script, then run it"


@pytest.mark.parametrize("change, message", [
    ({"method": "bogus"}, "unknown method 'bogus'"),
    ({"k": -10}, "k must be a number"),
    ({"method": "random"}, "is applied to a trained model"),
    ({"learning_rate": 0.1}, "takes no parameter"),
    ({"run_dir": "elsewhere"}, "filled in by the pipeline"),
    ({"init_from": "missing"}, "not an earlier training step"),
    ({"evals": [{"method": "random"}, {"k": 99, "method": "nope"}]}, "unknown method 'nope'"),
    ({"evals": [{"temperatur": 1.0}]}, "unknown pruning setting"),
])
def test_bad_parameters_are_rejected_before_any_notebook_runs(tmp_path, monkeypatch, glue_dir, change, message):
    def never(*args, **kwargs):
        raise AssertionError("a notebook ran")

    monkeypatch.setattr(papermill, "execute_notebook", never)
    profiles = tiny_profiles()
    bad = {"id": "bad", "notebook": "01_train.ipynb", "parameters": {**DENSE, **change}}
    profiles["tiny"]["steps"] = [profiles["tiny"]["steps"][0], bad]
    spec = write_spec(tmp_path, profiles)
    with pytest.raises(ConfigError, match=message) as error:
        reproduce("tiny", spec_path=spec, data_dir=glue_dir, log=lambda line: None)
    assert "step bad" in str(error.value) or "takes no parameter" in str(error.value)
    assert not (tmp_path / "reports").exists() and not (tmp_path / "runs").exists()


def test_unknown_profile_and_figure_parameters_are_rejected(tmp_path):
    profiles = {"tiny": {"steps": [{**FIGURE_STEPS[0], "parameters": {"methods": ["ts-dtp", "magic"]}}]}}
    spec = write_spec(tmp_path, profiles)
    parser = argparse.ArgumentParser()
    add_reproduce_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reproduce", "--profile", "full", "--spec", str(spec)])
    with pytest.raises(ConfigError, match="unknown profile 'full'; pipeline.yaml defines tiny"):
        reproduce_command(args)
    with pytest.raises(ConfigError, match="step heatmaps .*unknown method 'magic'"):
        make_plan("tiny", spec)


def small_notebook(path: Path, code: str) -> None:
    parameters = new_code_cell("figures_dir = 'figures'\nmessage = 'hello'")
    parameters.metadata["tags"] = ["parameters"]
    notebook = new_notebook(cells=[parameters, new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_a_failing_notebook_stops_the_pipeline_and_the_last_good_reports_stay(tmp_path):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    small_notebook(notebooks / "draw.ipynb", "from matplotlib.figure import Figure\n"
                                             "from tsdtp.analysis.plots import save_figure\n"
                                             "fig = Figure()\nfig.add_subplot().plot([1, 2])\n"
                                             "save_figure(fig, 'curve', figures_dir)")
    small_notebook(notebooks / "boom.ipynb", "raise RuntimeError(message)")
    steps = [{"id": "draw", "notebook": "draw.ipynb", "outputs": [{"figure": "curve", "caption": "A curve."}]},
             {"id": "explode", "notebook": "boom.ipynb", "parameters": {"message": "the data is gone"}}]
    spec = write_spec(tmp_path, {"p": {"steps": steps}}, notebooks)
    figures = tmp_path / "reports" / "figures"
    figures.mkdir(parents=True)
    (figures / "curve.png").write_bytes(b"last good png")
    with pytest.raises(PipelineError) as error:
        reproduce("p", spec_path=spec, log=lambda line: None)
    message = str(error.value)
    partial = tmp_path / "reports" / ".staging" / "notebooks" / "boom.ipynb"
    assert "notebook boom.ipynb (step explode) failed in cell" in message
    assert "raise RuntimeError(message)" in message and "RuntimeError: the data is gone" in message
    assert str(partial) in message and partial.is_file()
    executed = nbformat.read(partial, as_version=4)
    assert any(o["output_type"] == "error" for c in executed.cells for o in c.get("outputs", []))
    assert (figures / "curve.png").read_bytes() == b"last good png"
    assert not (tmp_path / "reports" / "manifest.json").exists()
    assert (tmp_path / "reports" / ".staging" / "figures" / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_measuring_step_draws_from_data_alone_under_figures_only(tmp_path):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    small_notebook(notebooks / "measure.ipynb",
                   "from pathlib import Path\nPath(figures_dir, 'how.txt').write_text(message)")
    step = {"id": "measure", "notebook": "measure.ipynb", "parameters": {"message": "measured"},
            "figures_only_parameters": {"message": "drawn from data"}}
    spec = write_spec(tmp_path, {"p": {"steps": [step]}}, notebooks)
    reproduce("p", spec_path=spec, log=lambda line: None)
    assert (tmp_path / "reports" / "figures" / "how.txt").read_text() == "measured"
    reproduce("p", spec_path=spec, log=lambda line: None, figures_only=True)
    assert (tmp_path / "reports" / "figures" / "how.txt").read_text() == "drawn from data"
    bad = write_spec(tmp_path / "bad", {"p": {"steps": [{**step, "figures_only_parameters": {"measur": False}}]}},
                     notebooks)
    with pytest.raises(ConfigError, match=r"figures_only_parameters \['measur'\] are not parameters of measure.ipynb"):
        make_plan("p", bad)


def test_notebooks_started_in_notebooks_folder_find_the_repository_root(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("profiles: {}\n")
    (tmp_path / "notebooks").mkdir()
    assert project_root(tmp_path / "notebooks") == tmp_path == project_root(tmp_path)
    assert project_root(tmp_path / "notebooks" / "deeper") == tmp_path / "notebooks" / "deeper"
