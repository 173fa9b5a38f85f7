"""What `tsdtp reproduce` shows while it runs: the plan with estimates, times left, forwarded notebook output."""

from __future__ import annotations

import io
import json
from pathlib import Path

from tsdtp.pipeline import progress
from tsdtp.pipeline.execute import ForwardedOutput
from tsdtp.pipeline.plan import Plan, Step
from tsdtp.pipeline.progress import (
    EVALUATE,
    KEPT,
    RUN,
    TRAIN,
    duration,
    estimate,
    plan_lines,
    previous_records,
    recorded_action,
    remaining,
    step_action,
)


def step(step_id: str, run_dir: Path | None = None, config_hash: str | None = None) -> Step:
    notebook = Path("notebooks") / ("01_train.ipynb" if run_dir else "03_efficiency.ipynb")
    return Step(step_id, notebook, {}, frozenset(), config_hash=config_hash, run_dir=run_dir)


def test_durations_and_what_is_left_read_naturally():
    assert [duration(s) for s in (4.2, 89, 91, 3569, 3599, 7500)] == ["4 s", "89 s", "2 min", "59 min", "1 h 00 min",
                                                                     "2 h 05 min"]
    assert remaining([30.0, 50.0]) == "about 80 s"
    assert remaining([30.0, None, None]) == "about 30 s + 2 step(s) with no recorded time"
    assert remaining([None]) == "unknown (1 step(s) with no recorded time)"


def test_each_step_is_estimated_from_the_last_run_of_the_same_action_and_config(tmp_path, monkeypatch):
    finished = tmp_path / "finished"
    monkeypatch.setattr(progress, "run_finished", lambda run_dir: run_dir == finished)
    trains, cached, figures = step("a", tmp_path / "new", "h1"), step("b", finished, "h2"), step("c")
    assert [step_action(s, False, False) for s in (trains, cached, figures)] == [TRAIN, EVALUATE, RUN]
    assert step_action(cached, True, False) == TRAIN and step_action(cached, False, True) == KEPT
    previous = {"a": {"action": TRAIN, "config_hash": "h1", "wall_s": 600.0},
                "b": {"cached": False, "config_hash": "h2", "wall_s": 500.0},
                "c": {"cached": None, "config_hash": None, "wall_s": 12.5}}
    assert recorded_action(previous["b"]) == TRAIN and recorded_action(previous["c"]) == RUN
    assert estimate(trains, TRAIN, previous) == 600.0
    assert estimate(step("a", tmp_path / "new", "other"), TRAIN, previous) is None
    assert estimate(cached, EVALUATE, previous) is None
    assert estimate(figures, RUN, previous) == 12.5 and estimate(cached, KEPT, {}) == 0.0


def test_the_plan_lists_steps_with_estimates_and_sums_what_is_known(tmp_path):
    steps = (step("sst2-none", tmp_path / "r1", "h1"), step("qnli-none", tmp_path / "r2", "h2"), step("efficiency"))
    plan = Plan("full", "", tmp_path / "pipeline.yaml", tmp_path, tmp_path / "reports", tmp_path / "runs", None, steps)
    actions = {"sst2-none": TRAIN, "qnli-none": KEPT, "efficiency": RUN}
    lines = plan_lines(plan, actions, {"sst2-none": None, "qnli-none": 0.0, "efficiency": 125.0})
    assert lines[0] == "plan: profile full, 3 steps into reports (1 to train, 0 cached runs to evaluate, " \
                       "1 without training)"
    assert lines[1].split() == ["1.", "sst2-none", "01_train.ipynb", "train", "no", "recorded", "time"]
    assert lines[2].split() == ["3.", "efficiency", "03_efficiency.ipynb", "run", "~2", "min"]
    assert lines[3] == "  1 training step(s) not run: their results and keep traces are kept from the last run"
    assert lines[4] == "estimate: about 2 min + 1 step(s) with no recorded time"


def test_previous_records_come_from_a_readable_manifest_only(tmp_path):
    assert previous_records(tmp_path) == ({}, {})
    (tmp_path / "manifest.json").write_text("{not json")
    assert previous_records(tmp_path) == ({}, {})
    (tmp_path / "manifest.json").write_text(json.dumps({"steps": [{"id": "a", "wall_s": 3}]}))
    assert previous_records(tmp_path)[1] == {"a": {"id": "a", "wall_s": 3}}


def test_forwarded_notebook_output_is_indented_and_streams_never_share_a_line():
    target = io.StringIO()
    output = ForwardedOutput(target)
    stdout, stderr = output.channel("stdout"), output.channel("stderr")
    stdout.write("loading\n")
    for chunk in ("\repoch 1/2:  10%|#", "\repoch 1/2:  20%|##"):
        stderr.write(chunk)
    stdout.write("trained: runs/x\n\n")
    stderr.write("\n")
    stdout.write("done")
    stdout.flush()
    assert target.getvalue() == ("    loading\n\r    epoch 1/2:  10%|#\r    epoch 1/2:  20%|##\n"
                                 "    trained: runs/x\n\n\n    done")
