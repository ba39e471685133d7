"""``ssmad data``: data utilities — synthetic data sets (``synth mvtec|hsi``) and input validation (``check``).

``ssmad data synth mvtec --out DIR`` writes an MVTec-AD-style image set (texture photos and procedural textures
with scratches, stains, holes, cut-paste patches and deformations, exact masks); ``ssmad data synth hsi --out
DIR`` writes ABU-style hyperspectral ``.mat`` scenes built from real reflectance spectra. Both are deterministic
by ``--seed`` and refuse a non-empty output folder unless ``--overwrite`` is given (exit code 2).

``ssmad data check PATH`` reads what a training run or a hyperspectral prediction would read and reports what it
found: for an image data set (any ``--layout``: MVTec AD / VisA trees, ADer ``meta.json``, MVTec 3D-AD, Real-IAD,
or the plain-folder layout with ``--normal-dir``) the detected layout, the classes and the counts per split and
kind; every image and mask is decoded and paired (sets of more than :data:`FULL_CHECK_LIMIT` images: headers
only, unless ``--check full``), and images that will be converted to 8-bit RGB (grayscale, RGBA, palette, 16-bit)
are counted; for a cube file (``.mat``, ENVI ``.hdr``, ``.npy``/``.npz``) the cube is loaded and validated.
Problems are reported as messages naming the file and the fix (the first ``--max-problems`` of them for the
index-based layouts and for unreadable files), with exit code 2.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from ..data.layout import LAYOUTS
from ..errors import InputError

_MVTEC_CATEGORIES = ("brick", "grass", "gravel", "weave", "wood")
#: ``data check --check auto`` decodes every file of sets up to this many images and reads headers beyond.
FULL_CHECK_LIMIT = 20_000
_DEFECTS = ("scratch", "stain", "hole", "cutpaste", "deformation")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` sub-command and its ``synth mvtec`` / ``synth hsi`` actions."""
    p = sub.add_parser(
        "data",
        help="data utilities: generate synthetic data sets, validate a data set or cube",
        description="Data utilities. 'ssmad data synth mvtec --out DIR' writes an MVTec-AD-style image set with "
        "exact defect masks; 'ssmad data synth hsi --out DIR' writes ABU-style hyperspectral .mat scenes. Both are "
        "deterministic by --seed and refuse a non-empty output folder unless --overwrite is given. 'ssmad data check "
        "PATH' decodes a data set (or loads a cube) the way a run would and reports problems (exit code 2).",
    )
    p.set_defaults(func=_help(p))
    actions = p.add_subparsers(dest="data_command", metavar="ACTION")
    synth = actions.add_parser("synth", help="write a synthetic data set (mvtec images or hsi scenes)")
    synth.set_defaults(func=_help(synth))
    kinds = synth.add_subparsers(dest="synth_kind", metavar="KIND")

    m = kinds.add_parser("mvtec", help="MVTec-AD-style texture images with defects and exact masks")
    m.add_argument("--out", required=True, help="output folder (must be missing or empty)")
    m.add_argument("--categories", nargs="+", default=list(_MVTEC_CATEGORIES), metavar="NAME",
                   help=f"texture categories (default: all of {', '.join(_MVTEC_CATEGORIES)})")  # fmt: skip
    m.add_argument("--defects", nargs="+", default=list(_DEFECTS), metavar="KIND",
                   help=f"defect kinds (default: all of {', '.join(_DEFECTS)})")  # fmt: skip
    m.add_argument("--image-size", type=int, default=256, help="image side in pixels (default 256)")
    m.add_argument("--n-train", type=int, default=40, help="normal training images per category (default 40)")
    m.add_argument("--n-test-good", type=int, default=10, help="normal test images per category (default 10)")
    m.add_argument("--n-test-defect", type=int, default=4,
                   help="test images per defect kind and category (default 4)")  # fmt: skip
    m.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    m.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    m.set_defaults(func=run_mvtec)

    h = kinds.add_parser("hsi", help="ABU-style hyperspectral .mat scenes with sub-pixel targets")
    h.add_argument("--out", required=True, help="output folder (must be missing or empty)")
    h.add_argument("--scenes", type=int, default=1, help="number of scenes (default 1)")
    h.add_argument("--size", default="100x100", help="scene size HxW (default 100x100)")
    h.add_argument("--bands", type=int, default=None, help="number of bands over 400–2450 nm (default 180)")
    h.add_argument("--n-targets", type=int, default=8, help="targets per scene (default 8)")
    h.add_argument("--target-fraction", type=float, default=None,
                   help="exact fraction of target pixels (overrides --n-targets)")  # fmt: skip
    h.add_argument("--target-abundance", type=float, nargs=2, default=(0.05, 0.3), metavar=("LOW", "HIGH"),
                   help="range of the target mixing fraction (default 0.05 0.3)")  # fmt: skip
    h.add_argument("--noise-sigma", type=float, default=0.01, help="Gaussian noise std (default 0.01)")
    h.add_argument("--background", nargs="+", default=None, metavar="MATERIAL",
                   help="background materials (default soil vegetation road roof)")  # fmt: skip
    h.add_argument("--targets", nargs="+", default=None, metavar="MATERIAL",
                   help="target materials (default metal paint)")  # fmt: skip
    h.add_argument("--mosaic", action="store_true",
                   help="urban-mosaic background: parcels of one material each with streets, texture and mixed "
                   "pixels only along edges (default: smooth mixtures of the background materials)")  # fmt: skip
    h.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    h.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    h.set_defaults(func=run_hsi)

    c = actions.add_parser(
        "check",
        help="read and validate an image data set or a hyperspectral cube (exit 2 on a problem)",
        description="Decode every image and mask of a data set (or load one cube) the way a run would, and report "
        "what was found. Problems are reported as one message naming the file and the fix (exit code 2).",
    )
    c.add_argument("path", help="data set root, category folder, or cube file (.mat, .hdr, .npy, .npz)")
    c.add_argument("--layout", default="auto", choices=LAYOUTS, help="image layout (default auto: detected)")
    c.add_argument("--categories", nargs="+", default=None, metavar="NAME", help="only these categories")
    c.add_argument("--normal-dir", default=None, help="plain-folder layout: folder of normal images (under PATH)")
    c.add_argument("--abnormal-dirs", nargs="+", default=(), metavar="DIR",
                   help="plain-folder layout: folders of abnormal images")  # fmt: skip
    c.add_argument("--mask-dirs", nargs="+", default=None, metavar="DIR", help="plain-folder layout: mask folders")
    c.add_argument("--index", default=None, metavar="NAME",
                   help="ader: index file (default meta.json); realiad: folder of per-class JSON files")  # fmt: skip
    c.add_argument("--fold", type=int, default=None, help="ader: COCO-AD fold 0-3 (reads meta_20_<fold>.json)")
    c.add_argument("--train-on-validation", action="store_true",
                   help="ader, mvtec3d: count the validation images as training images")  # fmt: skip
    c.add_argument("--check", default="auto", choices=("auto", "full", "headers", "none"),
                   help=f"full: decode every file; headers: read headers only; auto (default): full up to "
                   f"{FULL_CHECK_LIMIT:,} images, headers beyond")  # fmt: skip
    c.add_argument("--max-problems", type=int, default=10, metavar="N", help="problems listed (default 10)")
    c.add_argument("--data-key", default=None, metavar="KEY", help="cube variable in .mat/.npz (default: data)")
    c.add_argument("--gt-key", default=None, metavar="KEY", help="ground-truth variable (default: map)")
    c.add_argument("--axes", default="HWB", metavar="HWB|BHW|...", help="axis order of the stored cube")
    c.set_defaults(func=run_check)


def _help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The ``func`` of a bare (sub-)command: print its help, exit code 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (or a single ``"N"`` for a square) into ``(H, W)``.

    Raises:
        InputError: Not of that form.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", str(text))
    if match is None:
        raise InputError(f"cannot read the scene size {text!r}. Fix: write it as HxW, e.g. --size 100x100.")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) else h
    return h, w


def run_mvtec(args: argparse.Namespace) -> int:
    """Write a synthetic MVTec-style image set and print what was written."""
    from ..data.synthetic import make_mvtec_like

    summary = make_mvtec_like(
        args.out,
        categories=args.categories,
        n_train=args.n_train,
        n_test_good=args.n_test_good,
        n_test_defect=args.n_test_defect,
        image_size=args.image_size,
        defects=args.defects,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"wrote {summary['n_images']} images and {summary['n_masks']} masks to {summary['root']}")
    for cat, counts in summary["counts"].items():
        print(f"  {cat}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def run_hsi(args: argparse.Namespace) -> int:
    """Write synthetic hyperspectral scenes and print what was written."""
    from ..data.synthetic import write_hsi_scenes

    h, w = parse_size(args.size)
    kwargs = {
        "h": h,
        "w": w,
        "bands": args.bands,
        "n_targets": args.n_targets,
        "target_fraction": args.target_fraction,
        "target_abundance": tuple(args.target_abundance),
        "noise_sigma": args.noise_sigma,
    }
    if args.background:
        kwargs["background_materials"] = tuple(args.background)
    if args.targets:
        kwargs["target_materials"] = tuple(args.targets)
    if args.mosaic:
        kwargs["background"] = "mosaic"
    summary = write_hsi_scenes(args.out, n_scenes=args.scenes, seed=args.seed, overwrite=args.overwrite, **kwargs)
    print(f"wrote {len(summary['files'])} scene(s) to {summary['root']}")
    for scene in summary["scenes"]:
        shape = "×".join(map(str, scene["shape"]))
        print(f"  {scene['file']}: {shape}, {scene['anomaly_pixels']} anomaly pixels in {scene['targets']} targets")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Validate a cube file or an image data set and print a summary (errors propagate as ``InputError``)."""
    from ..data.hsi import CUBE_SUFFIXES

    path = Path(args.path)
    if path.is_file() and (path.suffix.lower() in CUBE_SUFFIXES or path.with_suffix(".hdr").is_file()):
        return _check_cube(path, args)
    if path.is_file():
        raise InputError(
            f"{path} is a file but not a cube ({', '.join(CUBE_SUFFIXES)}). Fix: pass the data set folder (it "
            "should hold <category>/train/good) or a cube file."
        )
    return _check_images(path, args)


def _check_cube(path: Path, args: argparse.Namespace) -> int:
    from ..data.hsi import load_cube

    cube, gt, wavelengths = load_cube(path, data_key=args.data_key, gt_key=args.gt_key, axes=args.axes)
    h, w, b = cube.shape
    print(f"{path}: cube {h}×{w} pixels × {b} bands (float32, min {cube.min():.4g}, max {cube.max():.4g})")
    print(f"  ground truth: {'none' if gt is None else f'{int(gt.sum())} anomaly pixels'}")
    if wavelengths is None:
        print("  wavelengths: none")
    else:
        print(f"  wavelengths: {wavelengths[0]:.6g} – {wavelengths[-1]:.6g}")
    return 0


_CHECKED = {
    "full": "every image and mask decoded",
    "headers": "every image and mask header read, pixels not decoded (--check full decodes them)",
    "none": "files listed, not opened",
}


def _kinds_line(splits: dict[str, dict[str, int]]) -> str:
    """``train: good 4 | test: good 2, crack 1`` from ``{split: {kind: n}}``."""
    return " | ".join(f"{split}: " + ", ".join(f"{k} {n}" for k, n in kinds.items()) for split, kinds in splits.items())


def _check_images(root: Path, args: argparse.Namespace) -> int:
    from collections import Counter

    from ..data.layout import count_kinds, detect_layout, discover, summarize
    from ..data.records import Problems, check_records

    layout = detect_layout(root, args.layout, normal_dir=args.normal_dir, index=args.index, fold=args.fold)
    problems = Problems(limit=max(1, args.max_problems))
    records = discover(
        root,
        args.layout,
        categories=args.categories,
        normal_dir=args.normal_dir,
        abnormal_dirs=list(args.abnormal_dirs),
        mask_dirs=args.mask_dirs,
        index=args.index,
        fold=args.fold,
        train_on_validation=args.train_on_validation,
        check="none",  # files are opened below, collecting every problem
        problems=problems,
    )
    check = args.check if args.check != "auto" else ("full" if len(records) <= FULL_CHECK_LIMIT else "headers")
    modes: Counter[str] = Counter()
    # Pillow's modes are counted where every file is decoded anyway (its header parser is the slow part of a check)
    check_records(records, check, problems=problems, modes=modes if check == "full" else None)  # type: ignore[arg-type]
    cats = summarize(records)
    print(f"{root}: layout {layout}, {len(records)} images in {len(cats)} categories; {_CHECKED[check]}")
    kinds = count_kinds(records)
    for cat, counts in cats.items():
        print(f"  {cat}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print(f"    {_kinds_line(kinds[cat])}")
    converted = {m: n for m, n in sorted(modes.items()) if m != "RGB"}
    if converted:
        listing = ", ".join(f"{n} {m}" for m, n in converted.items())
        print(f"  converted to 8-bit RGB when loaded: {listing}")
    if problems:
        shown = "\n".join(f"  - {m}" for m in problems.messages)
        more = f" (the first {len(problems.messages)} below)" if problems.count > len(problems.messages) else ""
        raise InputError(f"{problems.count} problem(s) in {root}{more}:\n{shown}")
    return 0
