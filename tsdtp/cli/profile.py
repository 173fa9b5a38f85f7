"""`tsdtp profile`: the flags; the breakdown and its tables are `tsdtp.measure.records.record_profile`.

Methods are written as for `tsdtp bench` (`tsdtp.measure.methods`): `dense`, `none`, `run`,
`ts-dtp:k=0.5`, `general-dtp@runs/x`, ... Each is profiled on the run's evaluation batches
at every batch size, after warm-up (`tsdtp.measure.profile`). The command writes
`profile.csv` (per component) and `profile_layers.csv` (per component and layer) to
`--tables-dir`, replacing earlier rows of the same method, batch size and setting, and the
Chrome traces to `--trace-dir` when given.
"""

from __future__ import annotations

import argparse

from tsdtp.measure.devices import DEVICES, DTYPES
from tsdtp.measure.profile import DEFAULT_PROFILE_BATCH_SIZES, DEFAULT_PROFILE_METHODS, ProfileSettings
from tsdtp.measure.records import profile_summary, record_profile
from tsdtp.measure.session import load_workload


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_profile_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp profile` to the CLI's subparsers; the handler is `run_profile_command`."""
    parser = subparsers.add_parser("profile", help="break each method's inference time down by component")
    parser.add_argument("--run-dir", required=True, help="the run whose weights, task and eval split are used")
    parser.add_argument("--methods", default=DEFAULT_PROFILE_METHODS,
                        help="comma-separated METHOD[:key=value...][@RUN_DIR], as for bench (default: %(default)s)")
    parser.add_argument("--batch-sizes", type=_sizes, default=DEFAULT_PROFILE_BATCH_SIZES,
                        help="comma-separated (default: 1,32)")
    parser.add_argument("--threads", dest="profile_threads", type=int, default=2,
                        help="torch CPU threads (default 2)")
    parser.add_argument("--sort-by-length", action="store_true", help="order the eval set by length before batching")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--dtype", default="fp32", help=f"one of {', '.join(DTYPES)}")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes before the profiled one")
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--tables-dir", default="reports/data", help="where profile.csv and profile_layers.csv go")
    parser.add_argument("--trace-dir", default=None, help="also write a Chrome trace per method and batch size here")
    parser.add_argument("--cls-only-last-layer", action="store_true",
                        help="every method, dense included, runs its last layer for [CLS] alone")
    parser.set_defaults(handler=run_profile_command)
    return parser


def run_profile_command(args: argparse.Namespace) -> int:
    """Run `tsdtp profile` from parsed arguments; prints the shares, writes the tables."""
    settings = ProfileSettings(tuple(args.batch_sizes), args.warmup, args.profile_threads, args.device, args.dtype,
                               args.sort_by_length, args.trace_dir, progress=True,
                               cls_only_last_layer=args.cls_only_last_layer)
    workload = load_workload(args.run_dir, args.methods, args.data_dir, args.max_eval_samples)
    print(profile_summary(record_profile(workload, settings, args.tables_dir), settings))
    return 0
