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
    mad = targets.add_parser(
        "mambaad", help="MambaAD vs RD4AD: train step, images/s, FLOPs, efficiency ratio (decoder cost per FLOP)"
    )
    mad.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
    mad.add_argument("--size", type=int, default=256, help="square input size, a multiple of 32 (default 256)")
    mad.add_argument("--encoder", default="resnet34", help="timm encoder shared by both models (default resnet34)")
    mad.add_argument("--repeats", type=int, default=2, help="timed inference rounds after a warm-up (min is kept)")
    mad.add_argument("--train-repeats", type=int, default=1, help="timed training-step rounds (0: skip training)")
    mad.add_argument("--models", default="mambaad,rd4ad", help="comma-separated models (default mambaad,rd4ad)")
    mad.add_argument("--json", default=None, help="also write the report to this new JSON file")
    mad.set_defaults(func=_run_mambaad)
    exp = targets.add_parser("export", help="onnxruntime vs PyTorch on the CPU (exported graph vs its module)")
    exp.add_argument("--models", default="mambaad,rd4ad", help="comma-separated models (default mambaad,rd4ad)")
    exp.add_argument("--encoder", default="resnet34", help="timm encoder of both models (default resnet34)")
    exp.add_argument("--size", type=int, default=256, help="square input size, a multiple of 32 (default 256)")
    exp.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    exp.add_argument("--rounds", type=int, default=5, help="paired timed rounds after a warm-up (default 5)")
    exp.add_argument("--threads", type=int, default=None, help="threads of both runtimes (default: torch's)")
    exp.add_argument("--exporter", default="torchscript", help="torchscript (default) or dynamo")
    exp.add_argument("--json", default=None, help="also write the report to this new JSON file")
    exp.set_defaults(func=_run_export)


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


def _run_export(args: argparse.Namespace) -> int:
    from ..bench.export import run_export_benchmark

    run_export_benchmark(
        models=[m for m in args.models.split(",") if m],
        encoder=args.encoder,
        size=args.size,
        batch=args.batch,
        rounds=args.rounds,
        threads=args.threads,
        exporter=args.exporter,
        json_path=args.json,
    )
    return 0
