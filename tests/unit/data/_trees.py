"""Small image trees written by the tests themselves (MVTec AD, VisA 1cls, raw VisA, plain folders, ADer
``meta.json``, MVTec 3D-AD, Real-IAD)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


# --------------------------------------------------------------------------- index-based and 3-D layouts
def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def make_ader_tree(root: Path, meta_name: str = "meta.json", size: tuple[int, int] = (24, 20)) -> dict[str, Any]:
    """An ADer data set: MVTec-style files plus the ``meta.json`` index ADer's ``gen_benchmark`` scripts write.

    Class ``bottle``: 3 train / 1 validation / 2 good test images, 2 ``broken`` images with masks and 1 ``crack``
    image whose ``mask_path`` is empty (image-level label only). Class ``liver``: 2 train and 2 good test images,
    no anomalies at all. Returns the index written.
    """
    meta: dict[str, Any] = {"train": {}, "test": {}, "validation": {}}

    def entry(path: Path, mask: Path | None, cls: str, specie: str, anomaly: int) -> dict[str, Any]:
        return {
            "img_path": _rel(path, root),
            "mask_path": "" if mask is None else _rel(mask, root),
            "cls_name": cls,
            "specie_name": specie,
            "anomaly": anomaly,
        }

    for cls, n_train in (("bottle", 3), ("liver", 2)):
        meta["train"][cls] = [
            entry(write_image(root / cls / "train" / "good" / f"{i:03d}.png", size, seed=i), None, cls, "good", 0)
            for i in range(n_train)
        ]
        meta["test"][cls] = [
            entry(write_image(root / cls / "test" / "good" / f"{i:03d}.png", size, seed=50 + i), None, cls, "good", 0)
            for i in range(2)
        ]
    meta["validation"]["bottle"] = [
        entry(
            write_image(root / "bottle" / "validation" / "good" / "000.png", size, seed=90), None, "bottle", "good", 0
        )
    ]
    for i in range(2):
        image = write_image(root / "bottle" / "test" / "broken" / f"{i:03d}.png", size, seed=100 + i)
        mask = write_mask(root / "bottle" / "ground_truth" / "broken" / f"{i:03d}_mask.png", size)
        meta["test"]["bottle"].append(entry(image, mask, "bottle", "broken", 1))
    crack = write_image(root / "bottle" / "test" / "crack" / "000.png", size, seed=120)
    meta["test"]["bottle"].append(entry(crack, None, "bottle", "crack", 1))
    (root / meta_name).write_text(json.dumps(meta, indent=2))
    return meta


def make_mvtec3d_tree(root: Path, size: tuple[int, int] = (24, 20)) -> Path:
    """An MVTec 3D-AD download (RGB + dummy xyz): ``bagel`` with 3 train / 1 validation / 2 good test images and 2
    ``crack`` images with masks in ``gt/``; ``foam`` with 2 train and 2 good test images and no anomalies."""
    for cls, n_train in (("bagel", 3), ("foam", 2)):
        for i in range(n_train):
            write_image(root / cls / "train" / "good" / "rgb" / f"{i:03d}.png", size, seed=i)
            (root / cls / "train" / "good" / "xyz").mkdir(parents=True, exist_ok=True)
            (root / cls / "train" / "good" / "xyz" / f"{i:03d}.tiff").write_bytes(b"II*\x00 depth, not read")
        for i in range(2):
            write_image(root / cls / "test" / "good" / "rgb" / f"{i:03d}.png", size, seed=50 + i)
            write_mask(root / cls / "test" / "good" / "gt" / f"{i:03d}.png", size, value=0)
    write_image(root / "bagel" / "validation" / "good" / "rgb" / "000.png", size, seed=90)
    for i in range(2):
        write_image(root / "bagel" / "test" / "crack" / "rgb" / f"{i:03d}.png", size, seed=100 + i)
        write_mask(root / "bagel" / "test" / "crack" / "gt" / f"{i:03d}.png", size)
    (root / "bagel" / "calibration").mkdir()
    return root


def _realiad_entry(
    base: Path, cls: str, split: str, kind: str, sample: int, seed: int, mask: bool, size: tuple[int, int]
) -> dict[str, Any]:
    """Write one Real-IAD image (and its mask) under ``base`` = ``realiad_1024/<class>``; return its JSON entry."""
    name = f"{cls}_{sample:04d}_{'OK' if kind == 'OK' else 'NG'}_C1_20230922093358"
    folder = Path("OK") / f"S{sample:04d}" if kind == "OK" else Path("NG") / kind / f"S{sample:04d}"
    write_image(base / folder / f"{name}.jpg", size, seed=seed)
    mask_rel = None
    if mask:
        write_mask(base / folder / f"{name}.png", size)
        mask_rel = (folder / f"{name}.png").as_posix()
    return {
        "category": cls,
        "anomaly_class": kind,
        "image_path": (folder / f"{name}.jpg").as_posix(),
        "mask_path": mask_rel,
    }


def make_realiad_tree(
    root: Path, form: str = "native", json_dir: str = "realiad_jsons/realiad_jsons", size: tuple[int, int] = (24, 20)
) -> dict[str, dict[str, Any]]:
    """A Real-IAD download: images under ``realiad_1024/<class>/`` and one JSON file per class.

    ``form="native"`` writes the JSON files to ``json_dir``; ``form="ader"`` writes ADer's copy
    (``<root>/<class>.json`` beside ``<root>/<class>/``). Class ``audiojack``: 3 train OK, 2 test OK, 2 ``BX``
    (deformation) with masks and 1 ``HS`` (scratch) with ``mask_path`` null. Class ``usb``: 2 train OK and 2 test OK,
    no anomalies. Returns the JSON content by class.
    """
    images = root if form == "ader" else root / "realiad_1024"
    jsons = root if form == "ader" else root / json_dir
    jsons.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}
    for cls, n_train in (("audiojack", 3), ("usb", 2)):
        base = images / cls
        train = [_realiad_entry(base, cls, "train", "OK", 1 + i, i, False, size) for i in range(n_train)]
        test = [_realiad_entry(base, cls, "test", "OK", 10 + i, 50 + i, False, size) for i in range(2)]
        if cls == "audiojack":
            test += [_realiad_entry(base, cls, "test", "BX", 20 + i, 100 + i, True, size) for i in range(2)]
            test.append(_realiad_entry(base, cls, "test", "HS", 30, 120, False, size))
        doc = {"meta": {"prefix": cls, "normal_class": "OK"}, "train": train, "test": test}
        (jsons / f"{cls}.json").write_text(json.dumps(doc))
        out[cls] = doc
    return out
