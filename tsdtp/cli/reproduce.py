"""`tsdtp reproduce`: rerun the notebook pipeline of a profile and regenerate its reports."""

from __future__ import annotations

import argparse
import sys

from tsdtp.pipeline.runner import adopt_runs, reproduce
from tsdtp.pipeline.spec import SPEC_FILE


def add_reproduce_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp reproduce` to the CLI's subcommands; `reproduce_command` handles it."""
    parser = subparsers.add_parser("reproduce", help="rerun the notebook pipeline and regenerate reports/")
    parser.add_argument("--profile", required=True, help="a profile of the spec: quick (minutes) or full")
    parser.add_argument("--force", action="store_true", help="retrain runs even when their cache folder is finished")
    parser.add_argument("--figures-only", action="store_true",
                        help="train and evaluate nothing: make the figures and tables again from the reports' data/")
    parser.add_argument("--until", default=None, metavar="STEP",
                        help="run the training steps up to this one (its id) and none after, then every step that "
                             "trains nothing, and publish: a long profile in parts")
    parser.add_argument("--from", dest="start", default=None, metavar="STEP",
                        help="run the training steps from this one (its id) on; the earlier ones keep their "
                             "published results (their runs must be cached where later steps start from them)")
    parser.add_argument("--spec", default=SPEC_FILE, help=f"the pipeline spec (default ./{SPEC_FILE})")
    parser.add_argument("--data-dir", default=None, help="GLUE-layout folder (default: $TSDTP_DATA_DIR, else hub)")
    parser.add_argument("--runs-root", default=None, help="the run cache (default: runs/ beside the spec)")
    parser.add_argument("--out-dir", default=None, help="where reports go (default: the profile's out_dir)")
    parser.add_argument("--adopt", default=None, metavar="DIR",
                        help="first link finished runs in DIR whose configs match the profile into the cache")
    return parser


def reproduce_command(args: argparse.Namespace) -> int:
    """Handle `tsdtp reproduce`; TsdtpErrors propagate to the CLI's one-line error report."""
    if args.adopt:
        for step_id, path in adopt_runs(args.profile, args.adopt, args.spec, args.runs_root).items():
            print(f"adopted {step_id}: {path}", file=sys.stderr)
    reproduce(args.profile, args.force, args.spec, args.data_dir, args.runs_root, args.out_dir,
              log=lambda line: print(line, file=sys.stderr, flush=True), figures_only=args.figures_only,
              stream=sys.stderr, until=args.until, start=args.start)
    return 0
