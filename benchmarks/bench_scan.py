"""Selective-scan benchmark (same as ``ssmad bench scan``): backends vs reference, mambapy peer and roofline.

Usage: python benchmarks/bench_scan.py [--shapes mad_s3,acm_infer] [--repeats 3] [--json out.json]
"""

import argparse
import logging

import ssmad.cli  # noqa: F401  (before torch loads: the OpenMP spin count the ssmad command uses)
from ssmad.bench.scan import run_scan_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", default=None)
    parser.add_argument("--backends", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_scan_benchmark(
        shapes=args.shapes.split(",") if args.shapes else None,
        backends=args.backends.split(",") if args.backends else None,
        repeats=args.repeats,
        peer=not args.no_peer,
        json_path=args.json,
    )
