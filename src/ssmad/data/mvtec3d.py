"""MVTec 3D-AD as downloaded, RGB images only (the depth ``xyz`` TIFFs are ignored).

The tree::

    <root>/<class>/train/good/rgb/000.png          (+ xyz/000.tiff, ignored)
    <root>/<class>/validation/good/rgb/000.png     (normal; used for training only when asked)
    <root>/<class>/test/good/rgb/000.png           (+ gt/000.png, all black, ignored)
    <root>/<class>/test/<defect>/rgb/000.png
    <root>/<class>/test/<defect>/gt/000.png        (the mask, same name as the image)

The ten classes are ``bagel``, ``cable_gland``, ``carrot``, ``cookie``, ``dowel``, ``foam``, ``peach``,
``potato``, ``rope`` and ``tire``. ADer (and so MambaAD) trains on ``train`` + ``validation``; here the
validation images join the training split with ``train_on_validation=True`` (the ``mambaad_mvtec3d`` preset).

A defect folder without ``gt/`` gives image-level labels only (a warning); a defect image whose mask is missing
from an existing ``gt/`` folder is an :class:`~ssmad.errors.InputError` naming the expected mask file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .records import (
    NORMAL,
    Check,
    ImageRecord,
    Problems,
    check_records,
    list_images,
    normalise_splits,
    report,
    select_categories,
    sort_records,
    subdirs,
)

logger = logging.getLogger(__name__)

#: The 10 MVTec 3D-AD classes.
MVTEC3D_CATEGORIES: tuple[str, ...] = (
    "bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire",
)  # fmt: skip


def is_mvtec3d_class(path: Path) -> bool:
    """Whether ``path`` looks like an MVTec 3D-AD class folder (``train/good/rgb`` or ``test/*/rgb``)."""
    if (path / "train" / NORMAL / "rgb").is_dir():
        return True
    test = path / "test"
    return test.is_dir() and any((d / "rgb").is_dir() for d in subdirs(test))


def looks_like_mvtec3d(root: Path) -> bool:
    """Whether ``root`` is an MVTec 3D-AD root (a class folder in the 3D layout) or one such class folder."""
    if not root.is_dir():
        return False
    return is_mvtec3d_class(root) or any(is_mvtec3d_class(d) for d in subdirs(root))


def _rgb_images(kind_dir: Path) -> list[Path]:
    rgb = kind_dir / "rgb"
    return list_images(rgb) if rgb.is_dir() else []


def _class_records(
    cls_dir: Path, category: str, splits: Sequence[str], train_on_validation: bool, problems: Problems | None
) -> list[ImageRecord]:
    records: list[ImageRecord] = []
    if "train" in splits:
        phases = ("train", "validation") if train_on_validation else ("train",)
        for phase in phases:
            records += [
                ImageRecord(p, None, 0, category, NORMAL, "train") for p in _rgb_images(cls_dir / phase / NORMAL)
            ]
        if not records:
            expected = cls_dir / "train" / NORMAL / "rgb"
            raise InputError(
                f"class {category!r} has no training images: {expected} is missing or empty. Every class needs "
                f"normal images in <class>/train/good/rgb/. Fix: restore them, remove the folder {cls_dir}, or select "
                "other classes (--data.categories)."
            )
    if "test" not in splits or not (cls_dir / "test").is_dir():
        return records
    for kind_dir in subdirs(cls_dir / "test"):
        kind = kind_dir.name
        images = _rgb_images(kind_dir)
        if kind == NORMAL:
            records += [ImageRecord(p, None, 0, category, NORMAL, "test") for p in images]
            continue
        gt = kind_dir / "gt"
        if not gt.is_dir():
            logger.warning("%s has no gt/ folder: its %d images get image-level labels only", kind_dir, len(images))
            records += [ImageRecord(p, None, 1, category, kind, "test") for p in images]
            continue
        for image in images:
            mask = gt / f"{image.stem}.png"
            if not mask.is_file():
                error = InputError(
                    f"the defect image {image} has no ground-truth mask: expected {mask}. Fix: restore the mask "
                    f"from the download, or move the image out of {kind_dir / 'rgb'}."
                )
                report(problems, error)
                continue
            records.append(ImageRecord(image, mask, 1, category, kind, "test"))
    return records


def discover_mvtec3d(
    root: str | Path,
    categories: Sequence[str] | str | None = None,
    *,
    split: str | Sequence[str] | None = None,
    train_on_validation: bool = False,
    check: Check = "headers",
    problems: Problems | None = None,
) -> list[ImageRecord]:
    """Index the RGB images of an MVTec 3D-AD download.

    Args:
        root: The folder of the class folders, or one class folder.
        categories: Restrict to these classes (default: all found).
        split: ``train``, ``test`` or both (default).
        train_on_validation: Add ``<class>/validation/good/rgb`` to the training images (as ADer does).
        check: ``none``, ``headers`` (default) or ``full``.
        problems: Collect missing masks and unreadable files here (skipping them) instead of raising.

    Raises:
        InputError: No class folder, a class without training images, a defect image without its mask, a mask of
            another size than its image, an unreadable file.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"the data root {root} does not exist or is not a folder. Fix: check the path.")
    splits = normalise_splits(split)
    if is_mvtec3d_class(root):
        class_dirs = {root.name: root}
    else:
        class_dirs = {d.name: d for d in subdirs(root) if is_mvtec3d_class(d)}
    if not class_dirs:
        raise InputError(
            f"no MVTec 3D-AD class folder found under {root}: expected <root>/<class>/train/good/rgb/*.png. Fix: "
            "point --data.root at the extracted mvtec_3d_anomaly_detection folder."
        )
    records: list[ImageRecord] = []
    for name in select_categories(sorted(class_dirs), categories, root):
        records += _class_records(class_dirs[name], name, splits, train_on_validation, problems)
    check_records(records, check, problems=problems)
    return sort_records(records)
