"""ADer's index: one ``meta.json`` that lists every image of a data set, by phase and class.

ADer (the toolbox MambaAD is built on) ships or generates this file for each of its benchmarks (MVTec AD, VisA,
MVTec 3D-AD, Uni-Medical, COCO-AD, MVTec LOCO, BTAD, MPDD …; ``data/gen_benchmark/*.py`` in ADer)::

    {"train": {"bottle": [{"img_path": "bottle/train/good/000.png", "mask_path": "",
                           "cls_name": "bottle", "specie_name": "good", "anomaly": 0}, ...], ...},
     "test":  {"bottle": [{"img_path": "bottle/test/broken_large/000.png",
                           "mask_path": "bottle/ground_truth/broken_large/000_mask.png",
                           "cls_name": "bottle", "specie_name": "broken_large", "anomaly": 1}, ...], ...},
     "validation": {...}}                       # MVTec 3D-AD only

Paths are relative to the data root (the folder holding the file); ``mask_path`` is empty for normal images.
COCO-AD has four files, ``meta_20_<fold>.json`` (fold 0–3, 20 held-out object classes each), one class ``coco``
and an empty ``specie_name``. The ``validation`` phase (normal MVTec 3D-AD images) is ignored unless asked for:
ADer adds it to the training images of MVTec 3D-AD (``train_on_validation=True``).

Records: category = the class key (ADer's generators write the same name into ``cls_name``), label =
``anomaly``, defect type = ``specie_name`` (``good`` for normal images, ``bad`` when empty). An anomalous image
with an empty ``mask_path`` gets no mask (it counts for the image metrics only, with a warning); a listed file
that does not exist is an :class:`~ssmad.errors.InputError` naming the index, the phase, the class and the entry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
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

#: The index file name ADer writes for most data sets.
META_FILE = "meta.json"
#: ADer's phases; ``validation`` exists for MVTec 3D-AD only.
PHASES = ("train", "test", "validation")
_META_NAME = re.compile(r"meta.*\.json", re.IGNORECASE)


def coco_meta_name(fold: int) -> str:
    """The COCO-AD index of one fold: ``meta_20_<fold>.json`` (ADer's ``gen_benchmark/coco.py``, 20 classes out)."""
    return f"meta_20_{fold}.json"


def meta_files(root: Path) -> list[str]:
    """Names of the ADer index files directly in ``root`` (``meta.json``, ``meta_20_0.json`` …), sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_file() and _META_NAME.fullmatch(p.name))


def find_meta(root: Path, index: str | None = None, fold: int | None = None) -> Path:
    """The ADer index to read: ``index`` if given, else the fold's COCO-AD file, else ``meta.json``.

    Raises:
        InputError: That file does not exist (the message lists the index files present).
        ConfigError: A negative fold.
    """
    if fold is not None and int(fold) < 0:
        raise ConfigError(f"data.fold must be ≥ 0 (COCO-AD has folds 0–3), got {fold!r}")
    name = index or (coco_meta_name(int(fold)) if fold is not None else META_FILE)
    path = root / name
    if path.is_file():
        return path
    present = meta_files(root)
    listed = f"present: {', '.join(present)}" if present else "there is no meta*.json file there"
    hint = (
        "generate it with ADer's data/gen_benchmark scripts, or pass --data.index NAME / --data.fold N"
        if not present
        else "pass one of them with --data.index NAME (COCO-AD: --data.fold N)"
    )
    raise InputError(f"the ADer index {path} does not exist ({listed}). Fix: {hint}.")


def _defect_type(entry: dict[str, Any], label: int) -> str:
    if not label:
        return NORMAL
    specie = str(entry.get("specie_name") or "").strip()
    return specie if specie and specie != NORMAL else "bad"


def _label(value: Any, where: str, entry: Any) -> int:
    if isinstance(value, bool) or value in (0, 1):
        return int(value)
    raise InputError(
        f"{where}: 'anomaly' must be 0 (normal) or 1 (anomalous), found {entry_text(value)} in {entry_text(entry)}. "
        "Fix: correct the entry."
    )


def _entry_record(root: Path, meta: Path, where: str, entry: Any, key: str, split: str) -> tuple[ImageRecord, bool]:
    """The record of one index entry, and whether it is anomalous without a mask."""
    if not isinstance(entry, dict) or not isinstance(entry.get("img_path"), str) or "anomaly" not in entry:
        raise InputError(
            f"{where}: expected an object with at least 'img_path' (a string) and 'anomaly' (0/1), found "
            f"{entry_text(entry)}. Fix: correct the entry (ADer's fields: img_path, mask_path, cls_name, "
            "specie_name, anomaly)."
        )
    label = _label(entry["anomaly"], where, entry)
    image = existing_file(
        root, entry["img_path"], "image", where, f"restore the file, or remove the entry from {meta.name}."
    )
    mask_name = entry.get("mask_path") or ""
    mask = None
    if label and mask_name:
        fix = f'restore the mask, or set its mask_path to "" in {meta.name} (image-level label only).'
        mask = existing_file(root, str(mask_name), "mask", where, fix)
    return ImageRecord(image, mask, label, key, _defect_type(entry, label), split), bool(label and mask is None)


def _read_phase(
    root: Path,
    meta: Path,
    phase: str,
    classes: dict[str, Any],
    split: str,
    wanted: set[str] | None,
    problems: Problems | None,
) -> tuple[list[ImageRecord], int]:
    """Records of one phase; also the number of anomalous entries without a mask.

    A bad entry raises, or is skipped and added to ``problems`` when a collector is given.
    """
    records: list[ImageRecord] = []
    no_mask = 0
    for key, entries in classes.items():
        if wanted is not None and key not in wanted:
            continue
        where_cls = f"{meta}, phase '{phase}', class '{key}'"
        if not isinstance(entries, list):
            raise InputError(
                f"{where_cls}: expected a list of image entries, found {type_name(entries)}. Fix: regenerate the "
                "index with ADer's data/gen_benchmark scripts."
            )
        for i, entry in enumerate(entries):
            try:
                record, missing_mask = _entry_record(root, meta, f"{where_cls}, entry {i}", entry, str(key), split)
            except InputError as err:
                report(problems, err)
                continue
            records.append(record)
            no_mask += missing_mask
    return records, no_mask


def discover_ader(
    root: str | Path,
    categories: Sequence[str] | str | None = None,
    *,
    index: str | None = None,
    fold: int | None = None,
    split: str | Sequence[str] | None = None,
    train_on_validation: bool = False,
    check: Check = "headers",
    problems: Problems | None = None,
) -> list[ImageRecord]:
    """Index a data set through ADer's ``meta.json``.

    Args:
        root: The data set folder holding the index; the index's paths are relative to it.
        categories: Restrict to these classes (default: all classes of the train phase).
        index: Index file name relative to ``root`` (default ``meta.json``, or ``meta_20_<fold>.json``).
        fold: COCO-AD fold 0–3 (selects ``meta_20_<fold>.json`` when ``index`` is not given).
        split: ``train``, ``test`` or both (default).
        train_on_validation: Add the ``validation`` phase to the training images (ADer does for MVTec 3D-AD).
        check: ``none``, ``headers`` (default) or ``full`` (see :func:`ssmad.data.records.check_records`).
        problems: Collect the problems of single entries and files here (skipping them) instead of raising.

    Returns:
        Sorted records of the selected classes.

    Raises:
        InputError: A missing or malformed index, a listed file that does not exist, a class without training
            images, a mask of another size than its image, an unreadable file.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"the data root {root} does not exist or is not a folder. Fix: check the path.")
    meta = find_meta(root, index, fold)
    splits = normalise_splits(split)
    data = read_json(meta, "the ADer index")
    if not isinstance(data, dict) or not any(p in data for p in PHASES):
        what = f"keys {', '.join(map(repr, list(data)[:6]))}" if isinstance(data, dict) else type_name(data)
        raise InputError(
            f"{meta} is not an ADer index: expected an object with the phases 'train' and 'test', found {what}. "
            "Fix: point --data.index at ADer's meta.json, or choose another --data.layout."
        )
    for phase in PHASES:
        if phase in data and not isinstance(data[phase], dict):
            raise InputError(
                f"{meta}, phase '{phase}': expected an object of classes, found {type_name(data[phase])}. Fix: "
                "regenerate the index with ADer's data/gen_benchmark scripts."
            )
    missing = [p for p in ("train", "test") if p not in data]
    if "train" in missing or ("test" in missing and "test" in splits):
        raise InputError(
            f"{meta} has no '{missing[0]}' phase (phases present: {', '.join(p for p in data if p in PHASES)}). "
            "Fix: regenerate the index with ADer's data/gen_benchmark scripts."
        )
    found = sorted(set(data["train"]) | set(data.get("test", {})))
    chosen = select_categories(found, categories, root)
    wanted = set(chosen)
    phases = [("train", "train")] if "train" in splits else []
    if "train" in splits and train_on_validation:
        if "validation" in data:
            phases.append(("validation", "train"))
        else:
            logger.warning("%s has no 'validation' phase; training uses the 'train' phase only", meta)
    elif "validation" in data:
        logger.info("%s: the 'validation' phase is not used (data.train_on_validation adds it to training)", meta)
    if "test" in splits:
        phases.append(("test", "test"))
    records: list[ImageRecord] = []
    no_mask = 0
    for phase, as_split in phases:
        part, n = _read_phase(root, meta, phase, data[phase], as_split, wanted, problems)
        records += part
        no_mask += n
    if "train" in splits:
        require_training_images(records, wanted, meta)
    if no_mask:
        logger.warning(
            "%s: %d anomalous image(s) have no mask_path; they count for the image metrics only", meta, no_mask
        )
    check_records(records, check, problems=problems)
    return sort_records(records)
