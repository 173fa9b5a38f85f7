"""`tsdtp bench`: the flags; the benchmark and its tables are `tsdtp.measure.records.record_bench`.

Methods are written `METHOD[:key=value...][@RUN_DIR]` (`tsdtp.measure.methods`): `dense`, `none`,
`run`, `ts-dtp:k=0.5`, `general-dtp@runs/x`, ... Every method is timed in each batch order of
`--orders` next to the dense baselines (`tsdtp.runs.speedups`).
"""

from __future__ import annotations

import argparse

from tsdtp.measure.bench import DEFAULT_BATCH_SIZES, DEFAULT_METHODS, BenchSettings, with_baselines
from tsdtp.measure.devices import DEVICES, DTYPES
from tsdtp.measure.records import RESULTS_BATCH_SIZE, bench_summary, record_bench
from tsdtp.measure.session import load_workload
from tsdtp.runs.speedups import ORDERS


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _orders(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_bench_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp bench` to the CLI's subparsers; the handler is `run_bench_command`."""
    bench = subparsers.add_parser("bench", help="measure speed, FLOPs and memory of methods side by side")
    bench.add_argument("--run-dir", required=True, help="the run whose weights, task and eval split are used")
    bench.add_argument("--methods", default=DEFAULT_METHODS,
                       help="comma-separated METHOD[:key=value...][@RUN_DIR]; the dense baselines dense and none "
                            "are always added (default: %(default)s)")
    bench.add_argument("--batch-sizes", type=_sizes, default=DEFAULT_BATCH_SIZES, help="comma-separated")
    bench.add_argument("--threads", dest="bench_threads", type=int, default=2, help="torch CPU threads (default 2)")
    bench.add_argument("--orders", type=_orders, default=ORDERS,
                       help=f"comma-separated batch orders every method is timed in, from {', '.join(ORDERS)} "
                            "(default: both)")
    bench.add_argument("--device", choices=DEVICES, default="cpu")
    bench.add_argument("--dtype", default="fp32", help=f"comma-separated, from {', '.join(DTYPES)}")
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--warmup", type=int, default=1)
    bench.add_argument("--max-eval-samples", type=int, default=None)
    bench.add_argument("--data-dir", default=None)
    bench.add_argument("--tables-dir", default="reports/data", help="where bench.csv and results.csv go")
    bench.add_argument("--results-batch-size", type=int, default=RESULTS_BATCH_SIZE,
                       help="batch size whose speedup goes into results.csv")
    bench.add_argument("--no-results", action="store_true", help="write bench.csv only")
    bench.add_argument("--no-memory", action="store_true", help="skip the profiled peak-memory pass")
    bench.add_argument("--no-flops-check", action="store_true", help="skip the FlopCounterMode cross-check")
    bench.add_argument("--cls-only-last-layer", action="store_true",
                       help="every method, the dense baselines included, runs its last layer for [CLS] alone (labels "
                            "end in ' +cls-only'; bench.csv only)")
    bench.set_defaults(handler=run_bench_command)
    return bench


def run_bench_command(args: argparse.Namespace) -> int:
    """Run `tsdtp bench` from parsed arguments, once per `--dtype`; prints a summary, writes the tables."""
    workload = load_workload(args.run_dir, with_baselines(args.methods), args.data_dir, args.max_eval_samples)
    for dtype in [d.strip() for d in args.dtype.split(",") if d.strip()]:
        settings = BenchSettings(tuple(args.batch_sizes), args.repeats, args.warmup, args.bench_threads, args.device,
                                 dtype, args.orders, not args.no_memory, not args.no_flops_check,
                                 progress=True, cls_only_last_layer=args.cls_only_last_layer)
        result = record_bench(workload, settings, args.tables_dir, None if args.no_results else args.results_batch_size)
        print(bench_summary(result, settings))
    return 0
