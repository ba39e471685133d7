"""``ssmad export``: write a trained image run as a file that runs without PyTorch.

::

    ssmad export --run results/mambaad/MVTecAD/all/latest --format onnx --out mambaad.onnx
    ssmad predict --onnx mambaad.onnx --input new_images/ --out predictions/

The ONNX graph takes ``image``: uint8 ``(N, H, W, 3)`` RGB at the run's image size (normalisation inside) and
returns ``anomaly_map`` float32 ``(N, H, W)`` and ``pred_score`` float32 ``(N,)``; the batch axis is dynamic. The
thresholds, the preprocessing, the image size and the ssmad version are stored in the model's metadata, so
``ssmad predict --onnx`` (which needs only onnxruntime, numpy and Pillow: ``pip install 'ssmad[export]'``) writes the
same maps, overlays and scores as ``ssmad predict --run``. After writing, the file is run once with onnxruntime on a
random batch and compared with PyTorch (``--no-check`` skips this).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser(
        "export",
        help="export a trained image run to ONNX (runs with onnxruntime, no PyTorch needed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, metavar="DIR", help="run folder of `ssmad train` (or of det.save)")
    p.add_argument("--format", default="onnx", metavar="FORMAT", help="export format (only: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write, e.g. model.onnx")
    p.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset, at least 17 (default 18)")
    p.add_argument(
        "--exporter",
        default="torchscript",
        metavar="NAME",
        help="torch.onnx exporter: torchscript (default, fast) or dynamo (torch.export-based, much slower)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch check after writing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``ssmad export``."""
    import json

    from ..errors import InputError
    from ..export.to_onnx import DEFAULT_OPSET, EXPORTERS, FORMATS

    fmt = str(args.format).lower()
    if fmt not in FORMATS:
        raise InputError(
            f"unknown export format {args.format!r}: ssmad exports {', '.join(FORMATS)} only. Fix: --format onnx."
        )
    if args.exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {args.exporter!r}. Fix: --exporter {' or --exporter '.join(EXPORTERS)}.")
    from ..export.to_onnx import export_onnx

    result = export_onnx(
        args.run,
        args.out,
        exporter=args.exporter,
        opset=DEFAULT_OPSET if args.opset is None else args.opset,
        overwrite=args.overwrite,
        check=not args.no_check,
    )
    meta = result.metadata
    h, w = json.loads(meta["image_size"])
    print(f"exported {meta['model']} from {meta['source_run']} → {result.path} ({result.n_nodes} operators)")
    print(f"  input image: uint8 (N, {h}, {w}, 3) RGB; image threshold {meta['threshold']}")
    if result.max_rel_diff is not None:
        print(f"  onnxruntime vs PyTorch on a random batch: largest relative difference {result.max_rel_diff:.2g}")
    print(f"predict with: ssmad predict --onnx {result.path} --input IMAGES --out DIR")
    return 0
