"""``ssmad convert``: turn checkpoints of other codebases into ssmad detector folders.

::

    ssmad convert mambaad-official mambaad_mvtec.pth --out models/mambaad_mvtec
    ssmad convert mambaad-official ckpt.pth --out models/m --normal datasets/MVTecAD --encoder resnet34

The folder loads with ``ssmad.load(folder)`` and works with ``ssmad test`` / ``ssmad predict``. The official file is
read with ``torch.load(weights_only=True)``; names are mapped as described in :mod:`ssmad.converters.mambaad_official`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command and its sources."""
    p = sub.add_parser(
        "convert",
        help="convert a checkpoint of another codebase into an ssmad detector folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    m = sources.add_parser(
        "mambaad-official",
        help="a MambaAD checkpoint of lewandofskee/MambaAD or ADer (.pth)",
        description="Convert an official MambaAD checkpoint (net_t / mff_oce / net_s) into a detector folder.",
    )
    m.add_argument("file", metavar="FILE", help="the official .pth checkpoint")
    m.add_argument("--out", required=True, metavar="DIR", help="detector folder to write")
    m.add_argument("--encoder", metavar="NAME", help="timm encoder name (default: recognised from the checkpoint)")
    m.add_argument(
        "--normal",
        metavar="DIR",
        help="normal images whose score quantile sets the decision thresholds (default: thresholds left unset)",
    )
    m.add_argument("--threshold", type=float, help="fixed image and pixel threshold")
    m.add_argument("--overwrite", action="store_true", help="replace the files of an existing detector folder")
    m.set_defaults(func=_run_mambaad)


def _run_mambaad(args: argparse.Namespace) -> int:
    import math

    from ..converters import convert_official

    det, conv = convert_official(
        args.file,
        args.out,
        encoder=args.encoder,
        threshold=args.threshold,
        normal=args.normal,
        overwrite=args.overwrite,
    )
    opts = conv.options
    tables = sum(1 for k in conv.dropped if ".scans.index_flat" in k)
    print(f"converted {args.file} ({conv.naming} naming): {len(conv.state)} tensors")
    print(
        f"  model: encoder {opts['encoder']}, image_size {opts['image_size']}, scan {opts['scan_type']} × "
        f"{opts['num_directions']} directions, decoder depths {opts['decoder_depths']}, d_state {opts['d_state']}"
    )
    if conv.renamed:
        print(f"  renamed {len(conv.renamed)} tensors of ADer's 7×7 branch (conv1b3/conv1a3 → conv1b7/conv1a7)")
    if tables:
        print(f"  dropped {tables} stored scan tables (checked against ssmad's {opts['scan_type']} curve)")
    other = len(conv.dropped) - tables
    if other:
        print(f"  dropped {other} unused tensors (ADer's conv33)")
    if math.isnan(det.threshold_):
        print("  thresholds: not set (scores and maps are complete; pass --normal DIR or --threshold to set them)")
    else:
        print(f"  thresholds: image {det.threshold_:.5g}, pixel {det.pixel_threshold_:.5g}")
    print(f"detector folder: {args.out}  (ssmad.load('{args.out}'))")
    return 0
