"""Data room: data-set layouts, image datasets and preprocessing, hyperspectral loaders.

========================  ===================================================================================
module                    job
========================  ===================================================================================
:mod:`.layout`            find images, masks and labels on disk (MVTec AD, VisA 1cls, plain folders) →
                          a sorted list of :class:`~.records.ImageRecord`; :func:`~.layout.discover` for every layout
:mod:`.records`           the record, sorting, selection, header checks and counts shared by all layouts
:mod:`.ader`              ADer's ``meta.json`` index (MVTec 3D-AD, Uni-Medical, COCO-AD … as ADer prepares them)
:mod:`.mvtec3d`           MVTec 3D-AD as downloaded (RGB images, ``gt`` masks)
:mod:`.realiad`           Real-IAD's per-class JSON files
:mod:`.index_files`       reading JSON index files, resolving and checking the paths they list
:mod:`.image_headers`     PNG/JPEG sizes from header bytes (the fast path of the ``headers`` check)
:mod:`.record_table`      :class:`~.record_table.RecordTable`: records as numpy columns, shared by loader workers
:mod:`.imageio`           decode any image/mask file or array into 8-bit RGB / a 0-1 mask, with clear errors
:mod:`.transforms`        :class:`~.transforms.Preprocessing` (resize → crop → normalise), recorded and replayed
:mod:`.images`            PyTorch datasets: :class:`~.images.AnomalyImageDataset`, :class:`~.images.InferenceDataset`
:mod:`.envi`              ENVI header parser and raw reader
:mod:`.hsi`               :func:`~.hsi.load_cube` for ``.mat`` (v5, v7.3), ENVI, ``.npy``/``.npz``
========================  ===================================================================================

Names are imported on first use, so ``from ssmad.data import load_cube`` does not import torch.

Example:
    >>> from ssmad.data import discover, AnomalyImageDataset, Preprocessing  # doctest: +SKIP
    >>> records = discover("datasets/MVTecAD")  # all categories, train + test  # doctest: +SKIP
    >>> train = AnomalyImageDataset([r for r in records if r.split == "train"], Preprocessing(256))  # doctest: +SKIP
    >>> cube, gt, wavelengths = load_cube("abu-urban-2.mat")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # layout
    "ImageRecord": "layout",
    "discover": "layout",
    "discover_mvtec": "layout",
    "discover_visa": "layout",
    "discover_folder": "layout",
    "list_images": "layout",
    "sort_records": "layout",
    "summarize": "layout",
    "select": "layout",
    "categories_of": "layout",
    "MVTEC_CATEGORIES": "layout",
    "VISA_CATEGORIES": "layout",
    "LAYOUTS": "layout",
    "detect_layout": "layout",
    "count_kinds": "records",
    "Problems": "records",
    "discover_ader": "ader",
    "discover_mvtec3d": "mvtec3d",
    "discover_realiad": "realiad",
    "MVTEC3D_CATEGORIES": "mvtec3d",
    "REALIAD_CATEGORIES": "realiad",
    "RecordTable": "record_table",
    # imageio
    "IMAGE_EXTENSIONS": "imageio",
    "read_image": "imageio",
    "read_mask": "imageio",
    # transforms
    "Preprocessing": "transforms",
    "preprocess_image": "transforms",
    "preprocess_mask": "transforms",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
    "INCEPTION_MEAN": "transforms",
    "INCEPTION_STD": "transforms",
    # images
    "AnomalyImageDataset": "images",
    "InferenceDataset": "images",
    # hsi
    "HSICube": "hsi",
    "load_cube": "hsi",
    "load_ground_truth": "hsi",
    "find_cubes": "hsi",
    # envi
    "read_envi": "envi",
    "read_header": "envi",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmad.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
