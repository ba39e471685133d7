"""MambaAD vs RD4AD benchmark (same as ``ssmad bench mambaad``): training step, inference images/s, FLOPs and the
efficiency ratio (MambaAD time / encoder time) ÷ (MambaAD FLOPs / encoder FLOPs), measured side by side in one run.

Usage: python benchmarks/bench_mambaad.py [--batch 8] [--size 256] [--encoder resnet34] [--repeats 2]
       [--train-repeats 1] [--models mambaad,rd4ad] [--json new_file.json]
"""

import argparse
import logging

import ssmad.cli  # noqa: F401  (before torch loads: the OpenMP spin count the ssmad command uses)
from ssmad.bench.mambaad import run_mambaad_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-repeats", type=int, default=1)
    parser.add_argument("--models", default="mambaad,rd4ad")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_mambaad_benchmark(
        batch=args.batch,
        size=args.size,
        encoder=args.encoder,
        repeats=args.repeats,
        train_repeats=args.train_repeats,
        models=args.models.split(","),
        json_path=args.json,
    )
