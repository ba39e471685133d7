"""Synthetic industrial-inspection data sets in the MVTec AD folder layout.

:func:`make_mvtec_like` writes, for every category::

    <root>/<category>/train/good/000.png …           normal images
    <root>/<category>/test/good/000.png …            normal test images
    <root>/<category>/test/<defect>/000.png …        one defect per image
    <root>/<category>/ground_truth/<defect>/000_mask.png   0/255 mask of exactly the pixels the defect changed
    <root>/ssmad_synthetic.json                      how the set was made (generator version, arguments, counts)

Images are RGB PNGs of ``image_size × image_size`` pixels made from texture photos and procedural patterns
(:mod:`.textures`) with defects painted on them (:mod:`.defects`). Each image has its own random stream,
derived from the seed and its category, split, defect kind and index, so the same arguments always produce the
same bytes, and a category comes out the same whichever other categories are generated with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ._common import check_output_root, check_seed, rng_for, save_png, staged_output
from .defects import DEFECTS, apply_defect
from .textures import CATEGORIES, category, normal_image

logger = logging.getLogger(__name__)

#: Version of the image generator; bumped whenever the same arguments would give different pixels.
GENERATOR_VERSION = 1
MANIFEST_NAME = "ssmad_synthetic.json"
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 2048


def _check_count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}. Fix: pass a count such as 10.")
    return int(value)


def _check_names(values: Sequence[str] | str, known: Sequence[str], what: str) -> tuple[str, ...]:
    names = (values,) if isinstance(values, str) else tuple(values)
    if not names:
        raise InputError(f"no {what} were given. Fix: name at least one of {', '.join(known)}.")
    unknown = [v for v in names if v not in known]
    if unknown:
        raise InputError(f"unknown {what} {', '.join(map(repr, unknown))}. Fix: use some of {', '.join(known)}.")
    if len(set(names)) != len(names):
        raise InputError(f"{what} are repeated in {list(names)}. Fix: name each one once.")
    return names


def normal_sample(category_name: str, split: str, index: int, image_size: int, seed: int = 0) -> np.ndarray:
    """The normal image a data set made with ``seed`` has at ``<category>/<split>/<index:03d>.png``.

    ``split`` is ``"train"`` or ``"test"`` for normal images; for a defect image pass the defect kind as
    ``split`` to get the image *before* the defect was painted (what the tests compare against).

    Returns:
        ``(image_size, image_size, 3)`` uint8.
    """
    return normal_image(category_name, rng_for(seed, category_name, split, index), image_size, seed)


def defect_sample(
    category_name: str, kind: str, index: int, image_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The defect image and its bool mask at ``<category>/test/<kind>/<index:03d>.png`` of a data set.

    Returns:
        ``(image (S, S, 3) uint8, mask (S, S) bool)``.
    """
    base = normal_sample(category_name, kind, index, image_size, seed)
    return apply_defect(
        base, kind, rng_for(seed, category_name, kind, index, "defect"), category_name=category_name, seed=seed
    )


def make_mvtec_like(
    root: str | Path,
    categories: Sequence[str] | str = ("brick", "grass", "gravel", "weave", "wood"),
    n_train: int = 40,
    n_test_good: int = 10,
    n_test_defect: int = 4,
    image_size: int = 256,
    defects: Sequence[str] | str = DEFECTS,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a synthetic MVTec-AD-style data set.

    Args:
        root: output folder; it must be missing or empty unless ``overwrite``.
        categories: texture categories (:data:`~.textures.CATEGORIES`: brick, grass, gravel, weave, wood).
        n_train: normal training images per category.
        n_test_good: normal test images per category.
        n_test_defect: test images per defect kind and category.
        image_size: side of the square images in pixels (32–2048).
        defects: defect kinds (:data:`~.defects.DEFECTS`).
        seed: non-negative integer; the same arguments and seed give identical files.
        overwrite: allow a non-empty ``root``: the category folders and the manifest written here replace those
            of the same name; nothing else in ``root`` is touched.

    Returns:
        A summary: ``root``, ``categories``, ``counts`` (``{category: {"train/good": n, "test/good": n,
        "test/<defect>": n}}``), ``n_images``, ``n_masks``, ``image_size``, ``seed``, ``generator_version``.

    Raises:
        InputError: Bad counts, sizes, names or seed, or a non-empty ``root`` without ``overwrite``.
    """
    cats = _check_names(categories, tuple(CATEGORIES), "synthetic categories")
    kinds = _check_names(defects, DEFECTS, "defect kinds")
    n_train = _check_count(n_train, "n_train", 1)
    n_test_good = _check_count(n_test_good, "n_test_good", 0)
    n_test_defect = _check_count(n_test_defect, "n_test_defect", 0)
    seed = check_seed(seed)
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
    ):
        raise InputError(
            f"image_size must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {image_size!r}. "
            "Fix: pass a size such as 256."
        )
    image_size = int(image_size)
    root = check_output_root(root, overwrite)
    for name in cats:
        category(name)

    counts: dict[str, dict[str, int]] = {}
    with staged_output(root) as stage:
        for cat in cats:
            c: dict[str, int] = {}
            for split, n in (("train", n_train), ("test", n_test_good)):
                for i in range(n):
                    save_png(
                        stage / cat / split / "good" / f"{i:03d}.png", normal_sample(cat, split, i, image_size, seed)
                    )
                c[f"{split}/good"] = n
            for kind in kinds:
                for i in range(n_test_defect):
                    image, mask = defect_sample(cat, kind, i, image_size, seed)
                    save_png(stage / cat / "test" / kind / f"{i:03d}.png", image)
                    save_png(stage / cat / "ground_truth" / kind / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
                c[f"test/{kind}"] = n_test_defect
            counts[cat] = c
            logger.info("synthetic %s: %s", cat, ", ".join(f"{k} {v}" for k, v in c.items()))
        summary: dict[str, Any] = {
            "root": str(root),
            "layout": "mvtec",
            "categories": list(cats),
            "defects": list(kinds),
            "counts": counts,
            "n_images": sum(sum(c.values()) for c in counts.values()),
            "n_masks": len(cats) * len(kinds) * n_test_defect,
            "image_size": image_size,
            "seed": seed,
            "generator": "ssmad.data.synthetic.make_mvtec_like",
            "generator_version": GENERATOR_VERSION,
            "sources": "texture photos brick/grass/gravel from scikit-image (CC0); procedural weave and wood",
        }
        manifest = {k: v for k, v in summary.items() if k != "root"}
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return summary
