"""What each process of a test launch runs (`python -m torch.distributed.run ... distributed_worker.py ACTIONS`).

ACTIONS are separated by `--then`, each one of
  train <tsdtp train arguments>           the `tsdtp train` command itself (tsdtp.cli.main)
  evaluate <run dir> <batch size> <json>  evaluate_model on the run's checkpoint and eval split, sharded; rank 0
                                          writes the summary and the keep trace to <json>
TSDTP_TEST_FAULT="<rank>:<step>:<raise|hang|interrupt>" makes that rank (`*`: every rank) fail when it reaches
that training step: raise a RuntimeError, sleep for 10 minutes, or raise KeyboardInterrupt;
"<rank>:-:unshared" makes that rank see no state.pt, as a node without the run directory's filesystem would.
"""

from __future__ import annotations

import json
import os
import sys
import time

import tsdtp.runs.training_loop as training_loop
from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.evaluate import evaluate_model
from tsdtp.classification.train import prepare_data
from tsdtp.cli import main
from tsdtp.hub import load_tokenizer
from tsdtp.runs.distributed import process_group


def inject_fault(spec: str) -> None:
    """Make training fail as `spec` (`rank:step:kind`) says, by wrapping the loop's `mark`."""
    rank, step, kind = spec.split(":")
    if kind == "unshared":
        if rank == os.environ["RANK"]:
            training_loop.load_trainer_state = lambda run_dir: None
        return
    real_mark = training_loop.mark

    def failing_mark(where: str) -> None:
        real_mark(where)
        if where == f"step {step}" and rank in ("*", os.environ["RANK"]):
            if kind == "raise":
                raise RuntimeError(f"injected failure at {where}")
            if kind == "interrupt":
                raise KeyboardInterrupt
            time.sleep(600)

    training_loop.mark = failing_mark


def evaluate(run_dir: str, batch_size: str, out: str) -> None:
    """Evaluate a run's checkpoint on its eval split in the process group; rank 0 writes the results."""
    with process_group(60) as ranks:
        model, config = load_checkpoint(run_dir)
        tokenizer = load_tokenizer(config.model)
        _, split, _ = prepare_data(config, tokenizer, None, include_train=False)
        result, traces = evaluate_model(model, split, int(batch_size), tokenizer.pad_token_id, record_traces=True,
                                        tokenizer=tokenizer, progress=False)
        if ranks.main:
            with open(out, "w") as handle:
                json.dump({"summary": result.summary(), "traces": traces.to_dict(orient="list")}, handle)


def run(action: list[str]) -> int:
    """Run one action; returns its exit status."""
    if action[0] == "train":
        return main(action)
    if action[0] == "evaluate":
        evaluate(*action[1:])
        return 0
    raise SystemExit(f"unknown action {action[0]!r}")


if __name__ == "__main__":
    if os.environ.get("TSDTP_TEST_FAULT"):
        inject_fault(os.environ["TSDTP_TEST_FAULT"])
    actions: list[list[str]] = [[]]
    for word in sys.argv[1:]:
        if word == "--then":
            actions.append([])
        else:
            actions[-1].append(word)
    for action in actions:
        status = run(action)
        if status:
            sys.exit(status)
