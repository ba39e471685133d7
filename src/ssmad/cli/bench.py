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
    ssd = targets.add_parser("ssd", help="SSD scan (Mamba-2) vs reference, selective-scan peer and roofline")
    ssd.add_argument("--shapes", default=None, help="comma-separated shape names (default: all MambaADv2 stages)")
    ssd.add_argument("--chunk-size", default="16,64", help="comma-separated chunk lengths to time (default 16,64)")
    ssd.add_argument("--repeats", type=int, default=3, help="timed rounds after a warm-up round (best is kept)")
    ssd.add_argument("--threads", type=int, default=None, help="torch threads for the run (default: torch's)")
    ssd.add_argument("--no-peer", action="store_true", help="skip the selective_scan peer")
    ssd.add_argument("--json", default=None, help="also write the table to this new JSON file")
    ssd.set_defaults(func=_run_ssd)
    mad = targets.add_parser(
        "mambaad",
        help="MambaAD vs MambaADv2 vs RD4AD: train step, images/s, FLOPs, efficiency ratio (decoder cost per FLOP)",
    )
    mad.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
    mad.add_argument("--size", type=int, default=256, help="square input size, a multiple of 32 (default 256)")
    mad.add_argument("--encoder", default="resnet34", help="timm encoder shared by all models (default resnet34)")
    mad.add_argument("--repeats", type=int, default=2, help="timed inference rounds after a warm-up (min is kept)")
    mad.add_argument("--train-repeats", type=int, default=1, help="timed training-step rounds (0: skip training)")
    mad.add_argument(
        "--models",
        default="mambaad,mambaadv2,rd4ad",
        help="comma-separated models (default mambaad,mambaadv2,rd4ad)",
    )
    mad.add_argument("--json", default=None, help="also write the report to this new JSON file")
    mad.set_defaults(func=_run_mambaad)


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


def _run_ssd(args: argparse.Namespace) -> int:
    from ..bench.ssd import run_ssd_benchmark
    from ..errors import InputError

    try:
        chunk_sizes = [int(q) for q in args.chunk_size.split(",") if q.strip()]
    except ValueError as exc:
        raise InputError(
            f"--chunk-size must be comma-separated integers such as 16,64, got {args.chunk_size!r}"
        ) from exc
    run_ssd_benchmark(
        shapes=args.shapes.split(",") if args.shapes else None,
        chunk_sizes=chunk_sizes,
        repeats=args.repeats,
        peer=not args.no_peer,
        threads=args.threads,
        json_path=args.json,
    )
    return 0


def _run_mambaad(args: argparse.Namespace) -> int:
    from ..bench.mambaad import run_mambaad_benchmark

    run_mambaad_benchmark(
        batch=args.batch,
        size=args.size,
        encoder=args.encoder,
        repeats=args.repeats,
        train_repeats=args.train_repeats,
        models=[m for m in args.models.split(",") if m],
        json_path=args.json,
    )
    return 0
