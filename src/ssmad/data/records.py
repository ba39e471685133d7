"""The record every layout produces, and the helpers all layouts share.

A layout reader (:mod:`.layout` for MVTec AD / VisA / plain folders, :mod:`.ader`, :mod:`.mvtec3d`,
:mod:`.realiad`) turns files on disk into one flat list of :class:`ImageRecord`, sorted by
:func:`sort_records`. This module holds that record, the sorting, the category/split selection, the checks of
image headers (:func:`check_records`) and the counting used by reports (:func:`summarize`, :func:`count_kinds`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from ..errors import ConfigError, InputError
from .image_headers import header_size
from .imageio import is_image_file, read_image, read_mask

logger = logging.getLogger(__name__)

Check = Literal["none", "headers", "full"]

NORMAL = "good"
SPLITS = ("train", "test")
_SPLIT_RANK = {"train": 0, "test": 1}


@dataclass(frozen=True)
class ImageRecord:
    """One image of an anomaly-detection data set.

    Attributes:
        image_path: The image file.
        mask_path: Its ground-truth mask, or ``None`` (normal images; anomalous images without masks).
        label: 0 normal, 1 anomalous.
        category: Object/texture class (``bottle``, ``candle`` …).
        defect_type: ``good`` for normal images, otherwise the defect folder name (``bad`` in VisA).
        split: ``train`` or ``test``.
    """

    image_path: Path
    mask_path: Path | None
    label: int
    category: str
    defect_type: str
    split: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (paths as strings)."""
        return {
            "image_path": str(self.image_path),
            "mask_path": None if self.mask_path is None else str(self.mask_path),
            "label": self.label,
            "category": self.category,
            "defect_type": self.defect_type,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRecord:
        """Inverse of :meth:`to_dict`."""
        mask = data.get("mask_path")
        return cls(
            image_path=Path(data["image_path"]),
            mask_path=None if mask in (None, "") else Path(mask),
            label=int(data["label"]),
            category=str(data["category"]),
            defect_type=str(data["defect_type"]),
            split=str(data["split"]),
        )


def _sort_key(r: ImageRecord) -> tuple[Any, ...]:
    return (r.category, _SPLIT_RANK.get(r.split, 9), r.split, r.label, r.defect_type, r.image_path.as_posix())


def sort_records(records: Iterable[ImageRecord]) -> list[ImageRecord]:
    """Records sorted by category, split (train first), label, defect type and path."""
    return sorted(records, key=_sort_key)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; other files are skipped with a debug log.

    Raises:
        InputError: ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"the image folder {folder} {what}. Fix: check the path.")
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            path = Path(entry.path)
            if entry.is_dir():
                continue
            if is_image_file(path):
                out.append(path)
            else:
                logger.debug("skipping %s: not an image file by its name", path)
    return sorted(out, key=lambda p: p.name)


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` (hidden ones left out), sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


class Problems:
    """Problems collected instead of raised at the first one (``ssmad data check`` lists the first few).

    Args:
        limit: How many messages are kept; :attr:`count` counts them all.
    """

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.messages: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        """Record one problem (its message is kept while fewer than ``limit`` are)."""
        self.count += 1
        if len(self.messages) < self.limit:
            self.messages.append(message)

    def __bool__(self) -> bool:
        return self.count > 0


def report(problems: Problems | None, error: InputError) -> None:
    """Raise ``error``, or add it to ``problems`` when a collector is given."""
    if problems is None:
        raise error
    problems.add(str(error))


def _check_one(r: ImageRecord, check: Check, modes: Counter[str] | None) -> None:
    size = header_size(r.image_path)
    if modes is not None:
        with Image.open(r.image_path) as img:  # its header was just read fine
            modes[img.mode] += 1
    if check == "full":
        read_image(r.image_path)
    if r.mask_path is None:
        return
    mask_size = header_size(r.mask_path, "mask")
    if check == "full":
        read_mask(r.mask_path)
    if mask_size != size:
        raise InputError(
            f"the mask {r.mask_path} is {mask_size[0]}×{mask_size[1]} (width×height) but its image "
            f"{r.image_path} is {size[0]}×{size[1]}. Fix: re-export the mask at the image's size, or pair the "
            f"image with its own mask."
        )


def check_records(
    records: Sequence[ImageRecord],
    check: Check,
    *,
    problems: Problems | None = None,
    modes: Counter[str] | None = None,
) -> None:
    """Open every image header (and decode with ``full``); masks must have the size of their images.

    Args:
        records: The records to check.
        check: ``none`` (nothing), ``headers`` (image and mask headers, sizes compared) or ``full`` (also decode).
        problems: Collect every problem here instead of raising the first.
        modes: Count the Pillow modes of the images here (``RGB``, ``L``, ``I;16`` …).

    Raises:
        InputError: An unreadable file or a mask of another size than its image (the first one found), unless
            ``problems`` collects them.
        ConfigError: An unknown ``check``.
    """
    if check == "none":
        return
    if check not in ("headers", "full"):
        raise ConfigError(f"unknown check {check!r}; choose none, headers or full")
    for r in records:
        try:
            _check_one(r, check, modes)
        except InputError as err:
            report(problems, err)


def select_categories(found: Sequence[str], categories: Sequence[str] | str | None, root: Path) -> list[str]:
    """``categories`` (default: all of ``found``), each checked to be present.

    Raises:
        InputError: A requested category is not in ``found`` (the message lists those present).
    """
    if categories is None:
        return list(found)
    wanted = [categories] if isinstance(categories, str) else list(categories)
    unknown = [c for c in wanted if c not in found]
    if unknown:
        raise InputError(
            f"category {', '.join(map(repr, unknown))} not found under {root}; present: "
            f"{', '.join(found) or 'none'}. Fix: correct the name or the root folder."
        )
    return wanted


def normalise_splits(split: str | Sequence[str] | None) -> tuple[str, ...]:
    """``split`` as a tuple of ``train``/``test`` (``None``: both).

    Raises:
        ConfigError: Another split name.
    """
    if split is None:
        return SPLITS
    wanted = (split,) if isinstance(split, str) else tuple(split)
    bad = [s for s in wanted if s not in SPLITS]
    if bad:
        raise ConfigError(f"unknown split {', '.join(map(repr, bad))}; choose train and/or test")
    return wanted


def require_training_images(records: Sequence[ImageRecord], categories: Iterable[str], source: Path) -> None:
    """Every category in ``categories`` must have at least one normal training image.

    Raises:
        InputError: Naming the categories without one and ``source`` (the index file or folder).
    """
    counts = Counter(r.category for r in records if r.split == "train" and r.label == 0)
    empty = [c for c in sorted(categories) if counts[c] == 0]
    if empty:
        raise InputError(
            f"category {', '.join(map(repr, empty))} has no normal training images in {source}. Every category "
            "needs some: one model learns what normal looks like for all of them. Fix: add them, or select other "
            "categories (--data.categories)."
        )


def summarize(records: Iterable[ImageRecord]) -> dict[str, dict[str, int]]:
    """Counts per category: ``train``, ``test_normal``, ``test_anomalous``, ``masks``."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        c = out.setdefault(r.category, {"train": 0, "test_normal": 0, "test_anomalous": 0, "masks": 0})
        if r.split == "train":
            c["train"] += 1
        elif r.label:
            c["test_anomalous"] += 1
        else:
            c["test_normal"] += 1
        c["masks"] += r.mask_path is not None
    return out


def count_kinds(records: Iterable[ImageRecord]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per category, split and kind (``good`` or the defect type): ``{category: {split: {kind: n}}}``."""
    out: dict[str, dict[str, Counter[str]]] = {}
    for r in records:
        out.setdefault(r.category, {}).setdefault(r.split, Counter())[r.defect_type] += 1
    return {
        cat: {
            split: dict(sorted(kinds.items(), key=lambda kv: (kv[0] != NORMAL, kv[0])))
            for split, kinds in splits.items()
        }
        for cat, splits in out.items()
    }


def categories_of(records: Iterable[ImageRecord]) -> list[str]:
    """Sorted distinct categories of ``records``."""
    return sorted({r.category for r in records})


def select(
    records: Iterable[ImageRecord], *, split: str | None = None, category: str | Sequence[str] | None = None
) -> list[ImageRecord]:
    """Records of one split and/or some categories, order kept."""
    cats = None if category is None else ({category} if isinstance(category, str) else set(category))
    return [r for r in records if (split is None or r.split == split) and (cats is None or r.category in cats)]
