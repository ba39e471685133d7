"""SSD-scan benchmark (same as ``ssmad bench ssd``): ssd_scan vs reference, selective_scan peer and roofline.

Usage: python benchmarks/bench_ssd.py [--shapes v2_s3,v2_s2] [--chunk-size 16,64] [--repeats 3] [--threads 1]
       [--no-peer] [--json out.json]
"""

import argparse
import logging

import ssmad.cli  # noqa: F401  (before torch loads: the OpenMP spin count the ssmad command uses)
from ssmad.bench.ssd import run_ssd_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", default=None)
    parser.add_argument("--chunk-size", default="16,64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_ssd_benchmark(
        shapes=args.shapes.split(",") if args.shapes else None,
        chunk_sizes=[int(q) for q in args.chunk_size.split(",") if q.strip()],
        repeats=args.repeats,
        peer=not args.no_peer,
        threads=args.threads,
        json_path=args.json,
    )
