"""Finding the images, masks and labels of an anomaly-detection data set on disk.

Six layouts are understood; this module reads the three folder layouts below and :func:`discover` dispatches to
the others: ADer's ``meta.json`` index (:mod:`.ader`; MVTec 3D-AD, Uni-Medical, COCO-AD … as ADer prepares them),
MVTec 3D-AD's own tree (:mod:`.mvtec3d`, RGB only) and Real-IAD's per-class JSON files (:mod:`.realiad`). Each
yields one flat, deterministically sorted list of :class:`ImageRecord`
(several categories in one list: MambaAD trains one model on all classes of a data set).

**MVTec AD** (and every custom set that copies it)::

    <root>/<category>/train/good/*.png
    <root>/<category>/test/good/*.png
    <root>/<category>/test/<defect>/<name>.png
    <root>/<category>/ground_truth/<defect>/<name>_mask.png

**VisA, 1-class split.** Two forms are read:

* the converted tree written by VisA's ``prepare_data.py --split-type 1cls`` (``VisA_pytorch/1cls``, also
  anomalib's ``visa_pytorch``): the MVTec tree with ``good``/``bad`` folders and masks named like the image,
  ``<root>/<category>/ground_truth/bad/<name>.png``;
* the raw release (what ADer/MambaAD read): ``<root>/split_csv/1cls.csv`` with the columns
  ``object,split,label,image,mask`` and paths relative to ``<root>`` (``candle/Data/Images/Anomaly/000.JPG``,
  ``candle/Data/Masks/Anomaly/000.png``). Anomalous images get the defect type ``bad``.

**Plain folders** (given explicitly, :func:`discover_folder`): a folder of normal training images, optional
folders of normal test images, one or more folders of abnormal images (the folder name becomes the defect
type) and optional mask folders, masks matched by file stem (``<name>.png`` or ``<name>_mask.png``).

A root holding several category folders gives one index over all of them; a single category folder works
too. Labels: ``good`` → 0, any other defect type → 1. Files whose suffix is not an image suffix are skipped
(debug log), as are hidden files (``.DS_Store``, macOS ``._*`` companions).

Checking is cheap and done once: with ``check="headers"`` (default) every image and mask header is opened
(no pixel decoding) so unreadable files and mask/image size mismatches fail at discovery time with a message
naming the file; ``check="full"`` also decodes every file; ``check="none"`` only lists files.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, InputError
from .imageio import IMAGE_EXTENSIONS
from .records import (
    NORMAL,
    SPLITS,
    Check,
    ImageRecord,
    Problems,
    categories_of,
    check_records,
    count_kinds,
    list_images,
    normalise_splits,
    select,
    select_categories,
    sort_records,
    subdirs,
    summarize,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "MVTEC_CATEGORIES",
    "NORMAL",
    "SPLITS",
    "VISA_CATEGORIES",
    "Check",
    "ImageRecord",
    "Layout",
    "Problems",
    "categories_of",
    "count_kinds",
    "detect_layout",
    "discover",
    "discover_folder",
    "discover_mvtec",
    "discover_visa",
    "list_images",
    "select",
    "sort_records",
    "summarize",
]

Layout = Literal["auto", "mvtec", "visa", "folder", "ader", "mvtec3d", "realiad"]
#: Every value of ``data.layout``.
LAYOUTS: tuple[str, ...] = ("auto", "mvtec", "visa", "folder", "ader", "mvtec3d", "realiad")

#: The 15 MVTec AD categories.
MVTEC_CATEGORIES: tuple[str, ...] = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
#: The 12 VisA categories.
VISA_CATEGORIES: tuple[str, ...] = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1",
    "macaroni2", "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip

VISA_CSV = Path("split_csv") / "1cls.csv"


def _mask_index(folder: Path) -> dict[str, list[Path]]:
    """Mask files of ``folder`` by stem (both ``name`` and ``name_mask`` stems are keys)."""
    index: dict[str, list[Path]] = {}
    for path in list_images(folder):
        index.setdefault(path.stem, []).append(path)
    return index


def _find_mask(stem: str, index: Mapping[str, list[Path]], conventions: Sequence[str]) -> Path | None:
    """First mask matching ``stem`` under the naming conventions, ``mask`` (``<stem>_mask``) and/or ``same``."""
    for convention in conventions:
        key = f"{stem}_mask" if convention == "mask" else stem
        hits = index.get(key)
        if hits:
            pngs = [p for p in hits if p.suffix.lower() == ".png"]
            return (pngs or hits)[0]
    return None


def _conventions(layout: str) -> tuple[str, ...]:
    return {"mvtec": ("mask",), "visa": ("same",)}.get(layout, ("mask", "same"))


def _expected_mask(gt_dir: Path, stem: str, layout: str) -> str:
    if layout == "visa":
        return str(gt_dir / f"{stem}.png")
    if layout == "mvtec":
        return str(gt_dir / f"{stem}_mask.png")
    return f"{gt_dir / (stem + '_mask.png')} (MVTec AD naming) or {gt_dir / (stem + '.png')} (VisA naming)"


def _is_category_dir(path: Path) -> bool:
    return any((path / name).is_dir() for name in ("train", "test", "ground_truth"))


def _discover_category_tree(cat_dir: Path, category: str, layout: str, splits: Sequence[str]) -> list[ImageRecord]:
    """Records of one MVTec-style category folder (MVTec AD or converted VisA 1cls)."""
    records: list[ImageRecord] = []
    if "train" in splits:
        train_dir = cat_dir / "train" / NORMAL
        train = list_images(train_dir) if train_dir.is_dir() else []
        if not train:
            where = "is empty" if train_dir.is_dir() else "does not exist"
            raise InputError(
                f"category {category!r} has no training images: {train_dir} {where}. Every category needs "
                f"normal images in <category>/train/good/. Fix: add them, remove the folder {cat_dir}, or select "
                f"other categories (categories=[...] / --data.categories)."
            )
        records += [ImageRecord(p, None, 0, category, NORMAL, "train") for p in train]
        extra = [d.name for d in subdirs(cat_dir / "train") if d.name != NORMAL]
        if extra:
            logger.warning("%s: ignoring train/ sub-folders %s (only train/good is used)", cat_dir, extra)
    if "test" not in splits:
        return records
    test_dir = cat_dir / "test"
    if not test_dir.is_dir():
        logger.info("category %r has no test/ folder: training images only", category)
        return records
    gt_root = cat_dir / "ground_truth"
    has_gt = gt_root.is_dir()
    conventions = _conventions(layout)
    for defect_dir in subdirs(test_dir):
        defect = defect_dir.name
        images = list_images(defect_dir)
        if defect == NORMAL:
            records += [ImageRecord(p, None, 0, category, NORMAL, "test") for p in images]
            continue
        if not has_gt:
            records += [ImageRecord(p, None, 1, category, defect, "test") for p in images]
            continue
        gt_dir = gt_root / defect
        index = _mask_index(gt_dir) if gt_dir.is_dir() else {}
        for path in images:
            mask = _find_mask(path.stem, index, conventions)
            if mask is None:
                raise InputError(
                    f"the defect image {path} has no ground-truth mask: expected "
                    f"{_expected_mask(gt_dir, path.stem, layout)}. Fix: add the mask, move the image out of "
                    f"{defect_dir}, or delete {gt_root} to use the category without pixel labels."
                )
            records.append(ImageRecord(path, mask, 1, category, defect, "test"))
    if not has_gt and any(r.label == 1 and r.split == "test" for r in records):
        logger.warning("category %r has no ground_truth/ folder: pixel metrics will be unavailable", category)
    return records


def _open_csv(csv_path: Path) -> io.StringIO:
    """The decoded text of a CSV file, parsed once so that bytes that are not UTF-8 CSV raise an InputError."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
        for _ in csv.reader(io.StringIO(text, newline="")):
            pass
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(
            f"cannot read the split file {csv_path}: {type(err).__name__}: {err}. Fix: it must be UTF-8 CSV text "
            "(for VisA: the header 'object,split,label,image,mask'); restore the official split_csv/1cls.csv."
        ) from err
    return io.StringIO(text, newline="")


def _read_visa_csv(root: Path, csv_path: Path, splits: Sequence[str]) -> list[ImageRecord]:
    """Records from VisA's ``split_csv/1cls.csv`` (raw VisA release)."""
    records: list[ImageRecord] = []
    with _open_csv(csv_path) as f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        missing = [c for c in ("object", "split", "label", "image") if c not in columns]
        if missing:
            raise InputError(
                f"the VisA split file {csv_path} lacks the column(s) {', '.join(missing)}; expected the header "
                f"'object,split,label,image,mask'. Fix: use the official split_csv/1cls.csv."
            )
        for line, row in enumerate(reader, start=2):

            def get(key: str, row: dict[str, Any] = row) -> str:
                return (row.get(columns.get(key, ""), "") or "").strip()

            split = get("split").lower()
            if split not in splits:
                if split not in SPLITS:
                    raise InputError(
                        f"{csv_path}, line {line}: unknown split {split!r} (expected train or test). "
                        "Fix: correct the line."
                    )
                continue
            label_name = get("label").lower()
            if label_name not in ("normal", "anomaly"):
                raise InputError(
                    f"{csv_path}, line {line}: unknown label {label_name!r} (expected normal or anomaly). "
                    "Fix: correct the line."
                )
            label = int(label_name == "anomaly")
            image = root / get("image")
            mask_name = get("mask")
            mask = root / mask_name if (label and mask_name) else None
            if not image.is_file():
                raise InputError(f"{csv_path}, line {line}: the image {image} does not exist. Fix: restore it.")
            if label and mask is None:
                raise InputError(
                    f"{csv_path}, line {line}: the anomalous image {image} has no mask in the 'mask' column. "
                    "Fix: fill in the mask path."
                )
            if mask is not None and not mask.is_file():
                raise InputError(
                    f"{csv_path}, line {line}: the mask {mask} of the defect image {image} does not exist. "
                    "Fix: restore the mask file."
                )
            records.append(
                ImageRecord(image, mask, label, get("object"), "bad" if label else NORMAL, split)  # VisA has no types
            )
    return records


def discover_mvtec(
    root: str | Path,
    categories: Sequence[str] | str | None = None,
    *,
    layout: Literal["auto", "mvtec", "visa"] = "auto",
    split: str | Sequence[str] | None = None,
    check: Check = "headers",
) -> list[ImageRecord]:
    """Index an MVTec-style tree (MVTec AD, converted VisA 1cls, or any copy of that layout).

    Args:
        root: A folder of category folders, or one category folder (it has ``train/`` or ``test/``).
        categories: Restrict to these categories (default: all found).
        layout: Mask naming: ``mvtec`` (``<name>_mask.png``), ``visa`` (``<name>.png``) or ``auto`` (either).
        split: ``train``, ``test`` or both (default).
        check: ``none``, ``headers`` (default) or ``full``; see the module docstring.

    Returns:
        Sorted records of every selected category.

    Raises:
        InputError: Missing root, no categories, a category without training images, a defect image without
            its mask, a mask of another size than its image, an unreadable file.
    """
    root = Path(root)
    splits = normalise_splits(split)
    if not root.is_dir():
        raise InputError(
            f"the data root {root} does not exist{' (it is a file)' if root.exists() else ''}. "
            "Fix: pass the folder that holds <category>/train/good (e.g. datasets/MVTecAD)."
        )
    if _is_category_dir(root):
        cat_dirs = {root.name: root}
    else:
        cat_dirs = {d.name: d for d in subdirs(root) if _is_category_dir(d)}
        if not cat_dirs and (root / "1cls").is_dir():
            return discover_mvtec(root / "1cls", categories, layout=layout, split=split, check=check)
    if not cat_dirs:
        raise InputError(
            f"no category folder found under {root}: expected <root>/<category>/train/good/ (MVTec AD, VisA 1cls) "
            f"or <root>/split_csv/1cls.csv (raw VisA). Fix: point the root at the data set folder, or use the plain "
            f"folder layout (normal_dir=..., abnormal_dirs=[...])."
        )
    records: list[ImageRecord] = []
    for name in select_categories(sorted(cat_dirs), categories, root):
        records += _discover_category_tree(cat_dirs[name], name, layout, splits)
    check_records(records, check)
    return sort_records(records)


def discover_visa(
    root: str | Path,
    categories: Sequence[str] | str | None = None,
    *,
    split: str | Sequence[str] | None = None,
    check: Check = "headers",
) -> list[ImageRecord]:
    """Index VisA's 1-class split: the raw release with ``split_csv/1cls.csv`` or the converted ``1cls`` tree.

    Args:
        root: The VisA folder (holding ``split_csv/``), or the converted tree (``VisA_pytorch/1cls``).
        categories: Restrict to these categories (default: all).
        split: ``train``, ``test`` or both (default).
        check: ``none``, ``headers`` (default) or ``full``.

    Raises:
        InputError: As :func:`discover_mvtec`, plus malformed lines of the split file.
    """
    root = Path(root)
    csv_path = root / VISA_CSV
    if not csv_path.is_file():
        return discover_mvtec(root, categories, layout="visa", split=split, check=check)
    splits = normalise_splits(split)
    records = _read_visa_csv(root, csv_path, splits)
    found = sorted({r.category for r in records})
    wanted = set(select_categories(found, categories, root))
    records = [r for r in records if r.category in wanted]
    if "train" in splits:
        counts = Counter(r.category for r in records if r.split == "train")
        empty = [c for c in sorted(wanted) if counts[c] == 0]
        if empty:
            raise InputError(
                f"category {', '.join(map(repr, empty))} has no training images in {csv_path}. "
                "Fix: use the official 1cls split or select other categories."
            )
    check_records(records, check)
    return sort_records(records)


def _as_dirs(value: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [Path(value)]
    return [Path(v) for v in value]


def discover_folder(
    normal_dir: str | Path,
    abnormal_dirs: str | Path | Sequence[str | Path] = (),
    *,
    mask_dirs: str | Path | Sequence[str | Path] | None = None,
    normal_test_dirs: str | Path | Sequence[str | Path] | None = None,
    normal_test_ratio: float = 0.0,
    category: str | None = None,
    seed: int = 0,
    check: Check = "headers",
) -> list[ImageRecord]:
    """Index plain folders: normal training images, abnormal test images (one folder per defect type).

    Args:
        normal_dir: Folder of normal images (the training set).
        abnormal_dirs: Folder(s) of abnormal test images; each folder name is the defect type.
        mask_dirs: ``None`` (no pixel labels), one folder for all abnormal folders (masks either directly in
            it or in ``<mask_dir>/<defect folder name>/``), or one folder per abnormal folder. Masks are matched
            by stem: ``<name>_mask.*`` or ``<name>.*``. When mask folders are given every abnormal image needs one.
        normal_test_dirs: Folder(s) of normal test images.
        normal_test_ratio: Fraction of ``normal_dir`` moved to the test split (seeded random choice) when there
            is no separate normal test folder; 0 keeps all of them for training.
        category: Category name of every record (default: the name of the folder that holds ``normal_dir``).
        seed: Seed of the ``normal_test_ratio`` choice.
        check: ``none``, ``headers`` (default) or ``full``.

    Raises:
        InputError: A missing or empty normal folder, a missing or empty abnormal folder, a missing mask folder, an
            abnormal image without its mask, a mask of another size than its image, an unreadable file.
    """
    normal_dir = Path(normal_dir)
    normal = list_images(normal_dir)
    if not normal:
        raise InputError(
            f"the normal image folder {normal_dir} holds no images (suffixes {', '.join(sorted(IMAGE_EXTENSIONS))}). "
            "Fix: point normal_dir at a folder of normal training images."
        )
    category = category or normal_dir.resolve().parent.name or "folder"
    if not 0.0 <= normal_test_ratio < 1.0:
        raise ConfigError(f"normal_test_ratio must be in [0, 1); got {normal_test_ratio}")
    records: list[ImageRecord] = []
    test_normals = [p for d in _as_dirs(normal_test_dirs) for p in list_images(d)]
    if normal_test_ratio > 0 and not test_normals:
        n_test = round(len(normal) * normal_test_ratio)
        chosen = set(np.random.default_rng(seed).permutation(len(normal))[:n_test].tolist())
        test_normals = [p for i, p in enumerate(normal) if i in chosen]
        normal = [p for i, p in enumerate(normal) if i not in chosen]
    records += [ImageRecord(p, None, 0, category, NORMAL, "train") for p in normal]
    records += [ImageRecord(p, None, 0, category, NORMAL, "test") for p in test_normals]

    abnormal = _as_dirs(abnormal_dirs)
    masks = _as_dirs(mask_dirs)
    if masks and len(masks) not in (1, len(abnormal)):
        raise ConfigError(
            f"give one mask folder for all abnormal folders or one per abnormal folder; got {len(masks)} mask "
            f"folders for {len(abnormal)} abnormal folders"
        )
    for i, adir in enumerate(abnormal):
        images = list_images(adir)
        defect = adir.name
        if not images:
            raise InputError(
                f"the abnormal image folder {adir} holds no images (suffixes {', '.join(sorted(IMAGE_EXTENSIONS))}). "
                "Fix: add the abnormal images, or leave the folder out of abnormal_dirs."
            )
        if not masks:
            records += [ImageRecord(p, None, 1, category, defect, "test") for p in images]
            continue
        mdir = masks[i] if len(masks) > 1 else masks[0]
        if not mdir.is_dir():
            raise InputError(f"the mask folder {mdir} does not exist. Fix: check the path or leave masks out.")
        index: dict[str, list[Path]] = {}
        if len(masks) == 1 and (mdir / defect).is_dir():
            index = _mask_index(mdir / defect)
            mdir = mdir / defect
        else:
            index = _mask_index(mdir)
        for path in images:
            mask = _find_mask(path.stem, index, ("mask", "same"))
            if mask is None:
                raise InputError(
                    f"the abnormal image {path} has no mask in {mdir}: expected {mdir / (path.stem + '_mask.png')} "
                    f"or {mdir / (path.stem + '.png')}. Fix: add the mask or leave mask_dirs out for image-level "
                    "labels only."
                )
            records.append(ImageRecord(path, mask, 1, category, defect, "test"))
    check_records(records, check)
    return sort_records(records)


def detect_layout(
    root: str | Path | None,
    layout: str = "auto",
    *,
    normal_dir: str | Path | None = None,
    index: str | None = None,
    fold: int | None = None,
) -> str:
    """The layout :func:`discover` reads for these options: ``layout`` itself unless it is ``auto``.

    ``auto`` picks, in this order: ``folder`` when ``normal_dir`` is given; ``visa`` when ``split_csv/1cls.csv``
    exists; ``ader`` when ``meta.json`` exists (or ``index``/``fold`` names an ADer index that exists);
    ``realiad`` when Real-IAD JSON files are there; ``mvtec3d`` when class folders hold ``train/good/rgb``;
    otherwise ``mvtec``.

    Raises:
        ConfigError: An unknown layout name.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown data layout {layout!r}; choose {', '.join(LAYOUTS)}")
    if layout != "auto":
        return layout
    if normal_dir is not None:
        return "folder"
    if root is None:
        return "mvtec"
    from .ader import META_FILE, coco_meta_name
    from .mvtec3d import looks_like_mvtec3d
    from .realiad import looks_like_realiad

    root = Path(root)
    if (root / VISA_CSV).is_file():
        return "visa"
    meta = index or (coco_meta_name(int(fold)) if fold is not None else META_FILE)
    if (root / meta).is_file():
        return "ader"
    if fold is not None:
        return "ader"  # the fold's index is missing: let the ADer reader say which files are there
    if looks_like_realiad(root):
        return "realiad"
    if looks_like_mvtec3d(root):
        return "mvtec3d"
    return "mvtec"


def discover(
    root: str | Path | None = None,
    layout: Layout = "auto",
    *,
    categories: Sequence[str] | str | None = None,
    split: str | Sequence[str] | None = None,
    normal_dir: str | Path | None = None,
    abnormal_dirs: str | Path | Sequence[str | Path] = (),
    mask_dirs: str | Path | Sequence[str | Path] | None = None,
    normal_test_dirs: str | Path | Sequence[str | Path] | None = None,
    normal_test_ratio: float = 0.0,
    index: str | None = None,
    fold: int | None = None,
    train_on_validation: bool = False,
    check: Check = "headers",
    problems: Problems | None = None,
) -> list[ImageRecord]:
    """Index a data set in any supported layout; the one entry point behind ``--data.*`` options.

    Args:
        root: The data set folder. For ``layout="folder"`` relative folder arguments are resolved against it.
        layout: ``auto`` (see :func:`detect_layout`), ``mvtec``, ``visa``, ``folder``, ``ader`` (ADer's
            ``meta.json``, :mod:`ssmad.data.ader`), ``mvtec3d`` (MVTec 3D-AD RGB, :mod:`ssmad.data.mvtec3d`) or
            ``realiad`` (Real-IAD's JSON files, :mod:`ssmad.data.realiad`).
        categories: Restrict to these categories; for the plain-folder layout a single string names the category.
        split: ``train``, ``test`` or both (default).
        normal_dir: Plain-folder layout: the normal training images.
        abnormal_dirs: Plain-folder layout: folder(s) of abnormal images.
        mask_dirs: Plain-folder layout: mask folder(s).
        normal_test_dirs: Plain-folder layout: folder(s) of normal test images.
        normal_test_ratio: Plain-folder layout: fraction of normal images held out for testing.
        index: ``ader``: the index file relative to ``root`` (default ``meta.json``); ``realiad``: the folder of
            per-class JSON files (default: ``realiad_jsons/realiad_jsons``, ``realiad_jsons`` or ``root``).
        fold: ``ader``: the COCO-AD fold 0–3 (reads ``meta_20_<fold>.json``).
        train_on_validation: ``ader``, ``mvtec3d``: add the validation images to the training split.
        check: ``none``, ``headers`` (default) or ``full``.
        problems: ``ader``, ``mvtec3d``, ``realiad``: collect the problems of single entries and files here
            (skipping them) instead of raising the first; other layouts raise their first problem.

    Returns:
        Sorted records.

    Raises:
        InputError: Any problem with the files (see the layout functions).
        ConfigError: Invalid option values.
    """
    requested = layout
    layout = detect_layout(root, layout, normal_dir=normal_dir, index=index, fold=fold)  # type: ignore[assignment]
    if layout == "folder":
        if normal_dir is None:
            raise ConfigError(
                "the folder layout needs normal_dir (a folder of normal images) and usually abnormal_dirs; "
                "e.g. --data.normal_dir good --data.abnormal_dirs '[scratch, dent]'"
            )
        base = Path(root) if root is not None else Path()

        def resolve(v: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, str | Path):
                return base / v
            return [base / x for x in v]

        records = discover_folder(
            resolve(normal_dir),
            resolve(abnormal_dirs),
            mask_dirs=resolve(mask_dirs),
            normal_test_dirs=resolve(normal_test_dirs),
            normal_test_ratio=normal_test_ratio,
            category=categories if isinstance(categories, str) else None,
            check=check,
        )
        splits = normalise_splits(split)
        return [r for r in records if r.split in splits]
    if root is None:
        raise ConfigError("a data root is needed (--data.root) unless the folder layout is used")
    root = Path(root)
    if not root.exists():
        raise InputError(
            f"the data root {root} does not exist. Fix: check the path (it should hold <category>/train/good, "
            "e.g. datasets/MVTecAD)."
        )
    if layout == "ader":
        from .ader import discover_ader

        return discover_ader(
            root,
            categories,
            index=index,
            fold=fold,
            split=split,
            train_on_validation=train_on_validation,
            check=check,
            problems=problems,
        )
    if layout == "realiad":
        from .realiad import discover_realiad

        return discover_realiad(root, categories, index=index, split=split, check=check, problems=problems)
    if layout == "mvtec3d":
        from .mvtec3d import discover_mvtec3d

        return discover_mvtec3d(
            root, categories, split=split, train_on_validation=train_on_validation, check=check, problems=problems
        )
    if layout == "visa":
        return discover_visa(root, categories, split=split, check=check)
    naming: Literal["mvtec", "auto"] = (
        "mvtec" if requested == "mvtec" else "auto"
    )  # auto: either mask naming (<name>_mask.png, <name>.png)
    return discover_mvtec(root, categories, layout=naming, split=split, check=check)
