"""``ssmad predict``: score new images with a trained run, or hyperspectral cubes with a per-scene detector.

Images (a run of ``ssmad train`` or a folder written by ``det.save``)::

    ssmad predict --run results/mambaad/MVTecAD/all/latest --input new_images/ --out predictions/

writes ``maps/<name>.npy`` (float32 anomaly map at the image's resolution), ``overlays/<name>.png`` (image |
anomaly map | predicted mask) and ``scores.json`` (score, label and thresholds per image; unreadable files are
listed under ``skipped`` instead of stopping the run). The training data is not needed. ``--input`` may be an
image, a folder of images, or a ``.npy`` array batch ``(N, H, W, 3)``.

An exported model (``ssmad export``; needs only onnxruntime, numpy and Pillow, not PyTorch) writes the same files,
plus ``scores.csv``::

    ssmad predict --onnx model.onnx --input new_images/ --out predictions/

Hyperspectral cubes (``.mat``, ENVI ``.hdr``, ``.npy``/``.npz`` cubes) with a transductive detector
(``acmamba``, ``rx``, ``lrx``) go to the hyperspectral command path::

    ssmad predict --model acmamba --input scene.mat --out maps/

``--devices N`` splits the images of a run over N worker processes (one GPU each, or gloo on the CPU); each
writes the maps and overlays of its share and rank 0 writes ``scores.json``, as one process would.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .train import add_dotted_overrides

#: Models fitted per hyperspectral scene.
HSI_MODELS: tuple[str, ...] = ("acmamba", "rx", "lrx")
#: Suffixes that always mean a hyperspectral cube.
CUBE_SUFFIXES: tuple[str, ...] = (".mat", ".hdr", ".img", ".raw", ".dat")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict",
        help="score new images with a trained run (maps, overlays, scores), or hyperspectral cubes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", metavar="DIR", help="run folder of `ssmad train` (or a folder from det.save)")
    parser.add_argument("--onnx", metavar="FILE", help="a model written by `ssmad export` (runs with onnxruntime)")
    parser.add_argument("--model", metavar="NAME", help="hyperspectral detector fitted per cube (acmamba, rx, lrx)")
    parser.add_argument("--input", required=True, metavar="PATH", help="image, folder, .npy batch, or cube file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--threshold", type=float, help="image threshold (and pixel threshold) override")
    parser.add_argument("--pixel-threshold", type=float, help="pixel threshold override")
    parser.add_argument("--no-maps", action="store_true", help="do not write maps/*.npy")
    parser.add_argument("--no-overlays", action="store_true", help="do not write overlays/*.png")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="where to run (default auto)")
    parser.add_argument("--devices", default=1, type=int, metavar="N", help="worker processes for image runs")
    parser.add_argument(
        "--map-resolution",
        choices=("input", "model"),
        default="input",
        help="maps, masks and overlays at each image's size (default) or at the model's input size (any image size)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="largest input image (pixels) for maps at the input resolution (default 8388608 = 2^23, ~1.1 GB)",
    )
    parser.add_argument("--gt", metavar="FILE", help="hyperspectral: ground-truth map for metrics (optional)")
    add_dotted_overrides(parser, ("model",))
    try:
        from ._hsi import add_hsi_arguments
    except ModuleNotFoundError as err:  # a build without the hyperspectral path
        if err.name != f"{__package__}._hsi":
            raise
    else:
        add_hsi_arguments(parser)
    parser.set_defaults(func=run)


def _run_model(run_dir: str) -> str | None:
    from ..engine.checkpoint import read_json
    from ..engine.runs import resolve_run

    return str(read_json(resolve_run(run_dir) / "metadata.json").get("model") or "")


def _is_cube_file(path: Path) -> bool:
    if path.suffix.lower() in CUBE_SUFFIXES:
        return True
    if path.suffix.lower() in (".npy", ".npz") and path.is_file():
        return not _is_image_batch(path)
    return False


def _is_image_batch(path: Path) -> bool:
    """A ``.npy`` of shape ``(N, H, W, 3|1)`` / ``(N, H, W)`` with N images rather than a ``(H, W, B)`` cube."""
    import numpy as np

    if path.suffix.lower() != ".npy":
        return False
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4))


def is_hyperspectral(args: argparse.Namespace) -> bool:
    """Whether this call belongs to the hyperspectral path."""
    if args.run:
        return _run_model(args.run) in HSI_MODELS
    if args.model:
        return args.model.lower() in HSI_MODELS
    return _is_cube_file(Path(args.input))


def run(args: argparse.Namespace) -> int:
    """Execute ``ssmad predict``."""
    if getattr(args, "onnx", None):  # onnxruntime only: nothing below (torch) is imported
        return _predict_onnx(args)
    from ..engine import distributed
    from ..errors import InputError

    devices = distributed.check_devices(getattr(args, "devices", 1), args.device)
    if is_hyperspectral(args):
        if devices > 1:
            raise InputError(
                "--devices applies to image runs; a hyperspectral detector is fitted on one cube in one process. "
                "Fix: leave out --devices."
            )
        try:
            from ._hsi import run_hsi_predict
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}._hsi":
                raise
            raise InputError(
                "hyperspectral prediction is not available in this build of ssmad (ssmad.cli._hsi is missing)."
            ) from None
        return int(run_hsi_predict(args) or 0)
    if not args.run:
        raise InputError(
            f"ssmad predict on images needs a trained run: --run results/<model>/<dataset>/<category|all>/latest "
            f"(got --input {args.input} without --run). For hyperspectral cubes pass --model acmamba|rx|lrx."
        )
    if args.overrides:
        raise InputError("--model.* options apply to hyperspectral detectors only; an image run has its own config.")
    if devices > 1 and not distributed.in_launched_worker():
        if not Path(args.input).exists():
            raise InputError(
                f"the input {args.input} does not exist. Fix: pass an image file, a folder of images or a .npy."
            )
        return distributed.launch(args.argv, devices, args.device)
    return _predict_images(args)


def _load_inputs(source: Path) -> Any:
    """The ``--input`` path, or the array of a ``.npy`` batch."""
    from ..errors import InputError

    if not source.exists():
        raise InputError(f"the input {source} does not exist. Fix: pass an image file, a folder of images or a .npy.")
    if source.suffix.lower() != ".npy":
        return source
    import numpy as np

    try:
        return np.load(source, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"{source}: cannot read the array ({err}). Fix: save it with numpy.save.") from err


def _predict_onnx(args: argparse.Namespace) -> int:
    """``--onnx``: score images with onnxruntime only (no PyTorch import on this path)."""
    from ..errors import InputError
    from ..export.runtime import predict_onnx

    if args.run or args.model or args.overrides:
        given = "--run" if args.run else "--model" if args.model else "--model.* options"
        raise InputError(
            f"--onnx and {given} exclude each other: an exported model carries its own network, preprocessing and "
            "thresholds. Fix: pass either --onnx FILE or --run DIR."
        )
    summary = predict_onnx(
        args.onnx,
        _load_inputs(Path(args.input)),
        args.out,
        overwrite=args.overwrite,
        threshold=args.threshold,
        pixel_threshold=args.pixel_threshold,
        save_maps=not args.no_maps,
        overlays=not args.no_overlays,
    )
    threshold = summary["threshold"]
    shown = "unset" if threshold is None else f"{threshold:.5g}"
    print(
        f"scored {summary['n_images']} image(s) with {args.onnx}: {summary['n_anomalous']} anomalous "
        f"(threshold {shown}); results in {args.out}/scores.json"
    )
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable input(s); see scores.json")
    return 0


def _predict_images(args: argparse.Namespace) -> int:
    from ..engine import distributed
    from ..engine.runner import predict_run
    from ..errors import InputError

    source = Path(args.input)
    if not source.exists():
        raise InputError(f"the input {source} does not exist. Fix: pass an image file, a folder of images or a .npy.")
    inputs: Any = source
    if source.suffix.lower() == ".npy":
        import numpy as np

        try:
            inputs = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"{source}: cannot read the array ({err}). Fix: save it with numpy.save.") from err
    summary = predict_run(
        args.run,
        inputs,
        args.out,
        overwrite=args.overwrite,
        threshold=args.threshold,
        pixel_threshold=args.pixel_threshold,
        save_maps=not args.no_maps,
        overlays=not args.no_overlays,
        device=args.device,
        map_resolution=args.map_resolution,
        **({} if args.max_pixels is None else {"max_pixels": args.max_pixels}),
    )
    if not distributed.is_main():
        return 0
    print(
        f"scored {summary['n_images']} image(s): {summary['n_anomalous']} anomalous "
        f"(threshold {summary['threshold']:.5g}); results in {args.out}/scores.json"
    )
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable input(s); see scores.json")
    return 0
