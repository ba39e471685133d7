"""``ssmad bench``: benchmarks that print ratios measured side by side in one run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command and its targets."""
    p = sub.add_parser("bench", help="run a benchmark (ratios measured side by side in one run)")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    scan = targets.add_parser("scan", help="selective-scan backends vs reference, peer and roofline")
    scan.add_argument("--shapes", default=None, help="comma-separated shape names (default: all)")
    scan.add_argument("--repeats", type=int, default=3, help="timed repetitions per measurement (min is kept)")
    scan.add_argument("--backends", default=None, help="comma-separated backends (default: all available)")
    scan.add_argument("--no-peer", action="store_true", help="skip the mambapy peer")
    scan.add_argument("--json", default=None, help="also write the table as JSON to this file")
    scan.set_defaults(func=_run_scan)


def _run_scan(args: argparse.Namespace) -> int:
    from ..bench.scan import run_scan_benchmark

    run_scan_benchmark(
        shapes=args.shapes.split(",") if args.shapes else None,
        backends=args.backends.split(",") if args.backends else None,
        repeats=args.repeats,
        peer=not args.no_peer,
        json_path=args.json,
    )
    return 0
