"""Real-IAD as downloaded: one JSON file per class that lists the train and test images.

The download (https://realiad4ad.github.io/Real-IAD/) unpacks into::

    <root>/realiad_1024/<class>/OK/S0001/<class>_0001_OK_C1_<time>.jpg        (images, 1024 px; or realiad_raw,
    <root>/realiad_1024/<class>/NG/BX/S0002/<class>_0002_NG_BX_C1_<time>.jpg   realiad_512, realiad_256)
    <root>/realiad_1024/<class>/NG/BX/S0002/<class>_0002_NG_BX_C1_<time>.png  (its mask)
    <root>/realiad_jsons/realiad_jsons/<class>.json      (multi-view split; also realiad_jsons_sv/ single view,
                                                          realiad_jsons_fuiad_0.1/ … noisy training sets)

ADer's copy puts the JSON files beside the class folders instead (``<root>/<class>.json`` and ``<root>/<class>/``);
both forms are read. Each JSON file holds (field names as in Real-IAD's own loader)::

    {"meta":  {"prefix": "<class>", "normal_class": "OK", ...},
     "train": [{"category": "<class>", "anomaly_class": "OK", "image_path": "OK/S0001/....jpg",
                "mask_path": null}, ...],
     "test":  [{"category": "<class>", "anomaly_class": "BX", "image_path": "NG/BX/S0002/....jpg",
                "mask_path": "NG/BX/S0002/....png"}, ...]}

Paths are relative to ``<image folder>/<prefix>`` (the prefix is the class name; ADer uses the JSON file's name).
An image is normal when its ``anomaly_class`` is the ``normal_class`` (``OK``); otherwise the anomaly code
(``AK`` pit, ``BX`` deformation, ``CH`` abrasion, ``HS`` scratch, ``PS`` damage, ``QS`` missing part, ``YW``
foreign object, ``ZW`` contamination) is the defect type. An anomalous image without ``mask_path`` counts for
the image metrics only (warning); anomalous images in a ``train`` list (the noisy FUIAD splits) keep label 1, so
training leaves them out (warning). With ~151,000 images the index is read without decoding any image; the
default ``check="headers"`` opens each header once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .index_files import entry_text, existing_file, read_json, type_name
from .records import (
    NORMAL,
    Check,
    ImageRecord,
    Problems,
    check_records,
    normalise_splits,
    report,
    require_training_images,
    select_categories,
    sort_records,
)

logger = logging.getLogger(__name__)

#: The 30 Real-IAD classes.
REALIAD_CATEGORIES: tuple[str, ...] = (
    "audiojack", "bottle_cap", "button_battery", "end_cap", "eraser", "fire_hood", "mint", "mounts", "pcb",
    "phone_battery", "plastic_nut", "plastic_plug", "porcelain_doll", "regulator", "rolled_strip_base",
    "sim_card_set", "switch", "tape", "terminalblock", "toothbrush", "toy", "toy_brick", "transistor1", "u_block",
    "usb", "usb_adaptor", "vcpill", "wooden_beads", "woodstick", "zipper",
)  # fmt: skip
#: Folders searched for the per-class JSON files, in this order (relative to the root).
JSON_DIRS = ("realiad_jsons/realiad_jsons", "realiad_jsons", ".")
#: Folders searched for the class image folders, in this order (relative to the root).
IMAGE_DIRS = ("realiad_1024", "realiad_512", "realiad_256", "realiad_raw", ".")
_SPLIT_KEYS = ("train", "test")


def _json_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))


def _is_class_json(path: Path) -> bool:
    """Cheap test of a Real-IAD class file: its name is a class folder's name (``.``) or it lies in a json folder."""
    return path.stem in REALIAD_CATEGORIES or (path.parent / path.stem).is_dir()


def find_json_dir(root: Path, index: str | None = None) -> Path:
    """The folder of per-class JSON files: ``root / index`` if given, else the first of :data:`JSON_DIRS` with one.

    Raises:
        InputError: No such folder, or it holds no ``*.json`` file.
    """
    if index is not None:
        folder = root / index
        if not _json_files(folder):
            raise InputError(
                f"the Real-IAD JSON folder {folder} {'holds no .json file' if folder.is_dir() else 'does not exist'}. "
                "Fix: pass the folder of the per-class JSON files (e.g. --data.index realiad_jsons/realiad_jsons_sv)."
            )
        return folder
    for rel in JSON_DIRS:
        folder = root / rel
        files = _json_files(folder)
        if files and (rel != "." or any(_is_class_json(f) for f in files)):
            return folder
    raise InputError(
        f"no Real-IAD JSON files found under {root}: expected {root / 'realiad_jsons' / 'realiad_jsons'}/<class>.json "
        f"or {root}/<class>.json. Fix: unpack realiad_jsons.zip into {root}, or pass the folder with --data.index."
    )


def looks_like_realiad(root: Path) -> bool:
    """Whether ``root`` holds Real-IAD JSON files (``realiad_jsons/`` or ``<class>.json`` beside ``<class>/``)."""
    if not root.is_dir():
        return False
    if (root / "realiad_jsons").is_dir():
        return True
    return any((root / f.stem).is_dir() for f in _json_files(root))


def _image_base(root: Path, prefix: str) -> Path:
    for rel in IMAGE_DIRS:
        if (root / rel / prefix).is_dir():
            return root / rel / prefix
    tried = ", ".join(str(root / rel / prefix) for rel in IMAGE_DIRS)
    raise InputError(
        f"the image folder of Real-IAD class {prefix!r} was not found (tried {tried}). Fix: unpack {prefix}.zip "
        f"into {root / 'realiad_1024'}."
    )


def _entry_record(base: Path, where: str, entry: Any, category: str, normal_class: str, split: str) -> ImageRecord:
    """The record of one entry of a class file."""
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("image_path"), str)
        or not isinstance(entry.get("anomaly_class"), str)
    ):
        raise InputError(
            f"{where}: expected an object with 'image_path' and 'anomaly_class' strings (Real-IAD's fields: "
            f"category, anomaly_class, image_path, mask_path), found {entry_text(entry)}. Fix: correct the "
            "entry or restore the file."
        )
    image = existing_file(base, entry["image_path"], "image", where, "restore the file from the download.")
    anomalous = entry["anomaly_class"] != normal_class
    mask_name: Any = entry.get("mask_path")
    mask = None
    if anomalous and mask_name:
        mask = existing_file(base, str(mask_name), "mask", where, "restore the mask from the download.")
    defect = entry["anomaly_class"] if anomalous else NORMAL
    return ImageRecord(image, mask, int(anomalous), category, defect, split)


def _read_class(root: Path, path: Path, splits: Sequence[str], problems: Problems | None) -> list[ImageRecord]:
    """Records of one class file; a bad entry raises, or is skipped and added to ``problems``."""
    data = read_json(path, "the Real-IAD class file")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in _SPLIT_KEYS):
        found = ", ".join(f"{k!r}: {type_name(v)}" for k, v in list(data.items())[:5]) if isinstance(data, dict) else ""
        raise InputError(
            f"{path} is not a Real-IAD class file: expected an object with 'train' and 'test' lists (and 'meta'), "
            f"found {found or type_name(data)}. Fix: restore the file from realiad_jsons.zip."
        )
    raw_meta = data.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    normal_class = str(meta.get("normal_class", "OK"))
    category = path.stem
    prefix = str(meta.get("prefix") or category).strip("/\\")
    base = _image_base(root, prefix)
    records: list[ImageRecord] = []
    for split in splits:
        for i, entry in enumerate(data[split]):
            try:
                records.append(
                    _entry_record(base, f"{path}, '{split}' entry {i}", entry, category, normal_class, split)
                )
            except InputError as err:
                report(problems, err)
    return records


def discover_realiad(
    root: str | Path,
    categories: Sequence[str] | str | None = None,
    *,
    index: str | None = None,
    split: str | Sequence[str] | None = None,
    check: Check = "headers",
    problems: Problems | None = None,
) -> list[ImageRecord]:
    """Index Real-IAD through its per-class JSON files.

    Args:
        root: The Real-IAD folder (holding ``realiad_jsons/`` and ``realiad_1024/``), or ADer's ``data/realiad``.
        categories: Restrict to these classes (default: every JSON file).
        index: The JSON folder relative to ``root`` (default: the first of :data:`JSON_DIRS` holding JSON files),
            e.g. ``realiad_jsons/realiad_jsons_sv`` for the single-view split.
        split: ``train``, ``test`` or both (default).
        check: ``none``, ``headers`` (default) or ``full``.
        problems: Collect the problems of single entries and files here (skipping them) instead of raising.

    Raises:
        InputError: No JSON folder, a malformed class file, a listed file that does not exist, a class without
            normal training images, a mask of another size than its image, an unreadable file.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"the data root {root} does not exist or is not a folder. Fix: check the path.")
    splits = normalise_splits(split)
    folder = find_json_dir(root, index)
    files = {p.stem: p for p in _json_files(folder)}
    if folder == root:
        files = {k: p for k, p in files.items() if _is_class_json(p)}
    chosen = select_categories(sorted(files), categories, folder)
    records: list[ImageRecord] = []
    for name in chosen:
        records += _read_class(root, files[name], splits, problems)
    if "train" in splits:
        require_training_images(records, chosen, folder)
    no_mask = sum(1 for r in records if r.label and r.mask_path is None and r.split == "test")
    if no_mask:
        logger.warning("%s: %d anomalous test image(s) have no mask_path (image metrics only)", folder, no_mask)
    noisy = sum(1 for r in records if r.label and r.split == "train")
    if noisy:
        logger.warning(
            "%s: the train lists hold %d anomalous image(s) (a noisy FUIAD split?); they keep label 1 and are not "
            "trained on",
            folder,
            noisy,
        )
    check_records(records, check, problems=problems)
    return sort_records(records)
