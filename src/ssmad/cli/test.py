"""``ssmad test``: evaluate a trained run on labelled test images.

::

    ssmad test --run results/mambaad/MVTecAD/all/latest
    ssmad test --run results/mambaad/MVTecAD/all/v3 --data.root other/MVTecAD --metrics.definition ader

The data options default to those recorded in the run's ``config.yaml``; ``--data.*`` overrides them. Results
(``metrics.json``, ``metrics.csv``, ``images/``, ``report.html``) go to a new ``<run>/tests/v<N>/`` folder, or to
``--out`` (which must not hold results already). ``--devices N`` splits the images over N worker processes (one
GPU each, or gloo on the CPU); the metrics are those of one process.
"""

from __future__ import annotations

import argparse

from .train import add_dotted_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``test`` sub-command."""
    parser = subparsers.add_parser(
        "test",
        help="evaluate a trained run on labelled test images",
        description=__doc__,
        epilog="data options: --data.KEY VALUE (root, categories, layout, ...); --metrics.definition exact|ader; "
        "--output.images N; --output.report true|false",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", required=True, metavar="DIR", help="run folder written by `ssmad train`")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: <run>/tests/v<N>)")
    parser.add_argument("--threshold", type=float, help="image and pixel threshold for the predicted masks")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="where to run (default auto)")
    parser.add_argument("--devices", default=1, type=int, metavar="N", help="worker processes (default 1)")
    add_dotted_overrides(parser, ("data", "metrics", "output"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``ssmad test``."""
    from ..engine import distributed
    from ..engine.config import MetricsConfig, OutputConfig, build_section
    from ..engine.runner import evaluate_run
    from ..engine.runs import resolve_run
    from .train import overrides_to_dict, print_summary

    over = overrides_to_dict(args.overrides)
    metrics_cfg = build_section(MetricsConfig, over.get("metrics", {}), "metrics", "the command line")
    output_cfg = build_section(OutputConfig, over.get("output", {}), "output", "the command line")
    devices = distributed.check_devices(args.devices, args.device)
    if devices > 1 and not distributed.in_launched_worker():
        resolve_run(args.run)  # a missing or unfinished run fails here, before any process starts
        return distributed.launch(args.argv, devices, args.device)
    out, metrics = evaluate_run(
        args.run,
        data=over.get("data"),
        out_dir=args.out,
        definition=metrics_cfg.definition if "definition" in over.get("metrics", {}) else None,
        images=output_cfg.images,
        report=output_cfg.report,
        threshold=args.threshold,
        device=args.device,
    )
    report = out / "report.html"
    if distributed.is_main():
        print_summary(out, metrics, report if report.exists() else None)
    return 0
