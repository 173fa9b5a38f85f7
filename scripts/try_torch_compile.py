"""Does `torch.compile` speed up the packed engine's layers? Eager against compiled, side by side (issue 14).

The engine's layer loop changes shape at every pruning layer and batch (packing, survivors), so it is compiled
piecewise with dynamic shapes: the feed-forward (`tsdtp.adapters.bert.feed_forward`: intermediate, GELU, output,
residual and layer norm) and the scored attention's probabilities (`tsdtp.adapters.attention._probabilities`:
logits, scale, bias, softmax). The compiled versions replace those two module functions in this process only.
Every method runs on the same length-sorted batches of the run's evaluation split; eager and compiled passes
alternate for `--repeats` rounds after a warm-up (which also compiles), and the medians of whole-pass times are
compared. Predictions must agree. Usage:
    python scripts/try_torch_compile.py --run-dir runs/sst2-ts-dtp-... --batch-sizes 1,32 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import tsdtp.adapters.attention as attention
import tsdtp.adapters.bert as bert
from tsdtp.classification.encoding import collate
from tsdtp.classification.evaluate import predict_batch
from tsdtp.core.config import PruningConfig
from tsdtp.measure.session import load_workload

EAGER = {"feed_forward": bert.feed_forward, "_probabilities": attention._probabilities}
COMPILED = {"feed_forward": torch.compile(bert.feed_forward, dynamic=True),
            "_probabilities": torch.compile(attention._probabilities, dynamic=True)}


def use(functions: dict[str, Callable]) -> None:
    """Point the engine's feed-forward and probabilities at `functions` (eager or compiled)."""
    bert.feed_forward = functions["feed_forward"]
    attention._probabilities = functions["_probabilities"]


def one_pass(model, batches: list[dict[str, torch.Tensor]]) -> tuple[float, torch.Tensor]:
    """Seconds of one pass over `batches`, and the predicted labels."""
    started, predictions = time.perf_counter(), []
    for batch in batches:
        predictions.append(predict_batch(model, batch)[0].argmax(-1))
    return time.perf_counter() - started, torch.cat(predictions)


def main() -> None:
    """Print, per method and batch size, the eager and compiled pass medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-eval-samples", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = load_workload(args.run_dir, "run", max_eval_samples=args.max_eval_samples)
    model = work.runs[args.run_dir].model.eval()
    split, trained = work.data.split, model.pruning
    order = sorted(range(len(split.input_ids)), key=lambda i: len(split.input_ids[i]))
    for size in (int(b) for b in args.batch_sizes.split(",")):
        batches = [collate(split, order[i:i + size], work.data.pad_id) for i in range(0, len(order), size)]
        for pruning in (PruningConfig(), trained):
            model.pruning = pruning
            times: dict[str, list[float]] = {"eager": [], "compiled": []}
            with torch.inference_mode():
                labels = {}
                for name, functions in (("eager", EAGER), ("compiled", COMPILED)):
                    use(functions)
                    warmup, labels[name] = one_pass(model, batches)
                    print(f"batch {size} {pruning.method}: {name} warm-up {warmup:.1f} s", flush=True)
                agree = (labels["eager"] == labels["compiled"]).float().mean().item()
                for _ in range(args.repeats):
                    for name, functions in (("eager", EAGER), ("compiled", COMPILED)):
                        use(functions)
                        times[name].append(one_pass(model, batches)[0])
            eager, compiled = statistics.median(times["eager"]), statistics.median(times["compiled"])
            print(f"batch {size} {pruning.method}: eager {eager:.3f} s, compiled {compiled:.3f} s per pass, "
                  f"compiled speedup {eager / compiled:.3f}x (medians of {args.repeats}), "
                  f"predictions agree {agree:.3f}", flush=True)
    use(EAGER)


if __name__ == "__main__":
    main()
