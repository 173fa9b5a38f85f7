"""Time a translation run's encoder alone under several pruning settings, against the dense encoders.

Usage (from the repository root):
    python scripts/mt_encoder_speed.py --run-dir runs/mt-ts-dtp --samples 256 --batch-sizes 32,1 --repeats 7 \
        --settings '{}' '{"exit_mode": "delete"}' '{"prune_layers": [2], "k": -0.85}'

Each setting is a JSON object of pruning overrides (`PruningConfig.with_overrides`) applied to the run's own.
For each setting and batch size it prints one JSON line: `tsdtp.translation.speed.encoder_speed` on the
first `--samples` sentences of Multi30k test_2016_flickr (the speedup against the fastest dense encoder,
the FLOPs-implied speedup and their ratio), timed interleaved in this process.
"""

from __future__ import annotations

import argparse
import json

import torch

from tsdtp.translation.checkpoint import load_translator
from tsdtp.translation.data import load_corpus
from tsdtp.translation.encoding import encode_sources
from tsdtp.translation.speed import encoder_speed

SHOWN = ("encoder_speedup", "encoder_baseline", "encoder_speedup_vs_hf", "encoder_speedup_vs_engine",
         "encoder_flops_ratio", "encoder_flops_speedup", "encoder_realization")


def main() -> None:
    """Parse the flags and print one JSON line per setting and batch size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-sizes", default="32,1")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--settings", nargs="+", default=["{}"], help="JSON objects of pruning overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator, tokenizer, config, _ = load_translator(args.run_dir)
    trained = translator.pruning
    corpus = load_corpus("multi30k-test2016", args.data_dir).head(args.samples)
    source_ids = encode_sources(tokenizer, corpus.sources, config.max_source_length)
    for setting in args.settings:
        translator.pruning = trained.with_overrides(json.loads(setting))
        for batch_size in (int(size) for size in args.batch_sizes.split(",")):
            speed = encoder_speed(translator, tokenizer, source_ids, batch_size, repeats=args.repeats)
            shown = {key: round(value, 3) if isinstance(value, float) else value for key, value in speed.items()
                     if key in SHOWN}
            print(json.dumps({"setting": setting, "batch_size": batch_size, "threads": args.threads, **shown}),
                  flush=True)


if __name__ == "__main__":
    main()
