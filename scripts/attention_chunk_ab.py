"""Time and peak memory of one run's forward at batch 128 for two query-chunk sizes of the scored attention.

    python scripts/attention_chunk_ab.py --run-dir runs/qnli-ts-dtp-1a574ebb1a7c --threads 2 --repeats 5

The 256 shortest evaluation examples in two batches of 128; medians of `--repeats` interleaved passes; peak memory
as `tsdtp bench` measures it (`tsdtp.measure.memory`). The chunk sizes are a quarter (the code's) and half of the
head size of queries.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from tsdtp.adapters import attention
from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.encoding import collate, encode_split
from tsdtp.glue_tasks import get_task, load_task_data
from tsdtp.hub import load_tokenizer
from tsdtp.measure.memory import peak_activation_bytes


def chunk_of(divisor: int) -> Callable[[int, int, int, int, int], int]:
    """`attention.query_chunk` with chunks of `head_size // divisor` queries beyond the probability budget."""
    def chunk(batch: int, heads: int, queries: int, keys: int, head_size: int) -> int:
        if batch * heads * queries * keys <= attention.PROBABILITY_BUDGET:
            return min(queries, 2 * head_size)
        return max(1, head_size // divisor)
    return chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_checkpoint(args.run_dir)
    tokenizer = load_tokenizer(config.model)
    task = get_task(config.task)
    evaluation = load_task_data(task, args.data_dir, need_train=False).eval
    split = encode_split(task, evaluation.select(range(min(256, len(evaluation)))), tokenizer, task.max_length)
    order = sorted(range(len(split.labels)), key=lambda i: len(split.input_ids[i]))
    batches = [collate(split, order[start:start + 128], tokenizer.pad_token_id) for start in (0, 128)]
    sizes = {"a quarter of the head size": 4, "half the head size": 2}
    times: dict[str, list[float]] = {name: [] for name in sizes}
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, divisor in sizes.items():
                attention.query_chunk = chunk_of(divisor)
                start = time.perf_counter()
                for batch in batches:
                    model(batch)
                times[name].append(time.perf_counter() - start)
        for name, divisor in sizes.items():
            attention.query_chunk = chunk_of(divisor)
            peak = max(peak_activation_bytes(lambda: model(batch), torch.device("cpu")) for batch in batches)
            print(f"{name}: {statistics.median(times[name]):.3f} s, peak {peak / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
