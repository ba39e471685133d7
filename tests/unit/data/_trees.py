"""Small image trees written by the tests themselves (MVTec AD, VisA 1cls, raw VisA, plain folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (24, 20), seed: int = 0, mode: str = "RGB") -> Path:
    """A random image of ``size`` = (width, height) in ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(path)
    elif mode == "L":
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").save(path)
    else:
        raise ValueError(mode)
    return path


def write_mask(path: Path, size: tuple[int, int] = (24, 20), value: int = 255) -> Path:
    """A mask with a rectangle of ``value`` in the top-left quarter."""
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    arr[: h // 2, : w // 2] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "L").save(path)
    return path


def make_category_tree(
    root: Path,
    category: str,
    *,
    n_train: int = 3,
    n_test_good: int = 2,
    defects: dict[str, int] | None = None,
    naming: str = "mvtec",
    ext: str = ".png",
    size: tuple[int, int] = (24, 20),
) -> Path:
    """One MVTec-style category; ``naming`` = ``mvtec`` (``<name>_mask.png``) or ``visa`` (``<name>.png``)."""
    defects = {"scratch": 2, "hole": 1} if defects is None else defects
    cat = root / category
    for i in range(n_train):
        write_image(cat / "train" / "good" / f"{i:03d}{ext}", size, seed=i)
    for i in range(n_test_good):
        write_image(cat / "test" / "good" / f"{i:03d}{ext}", size, seed=100 + i)
    for d, n in defects.items():
        for i in range(n):
            write_image(cat / "test" / d / f"{i:03d}{ext}", size, seed=200 + i)
            name = f"{i:03d}_mask.png" if naming == "mvtec" else f"{i:03d}.png"
            write_mask(cat / "ground_truth" / d / name, size)
    return cat
