"""PyTorch datasets over image records (training/evaluation) and over raw inputs (prediction).

:class:`AnomalyImageDataset` turns the records of :mod:`ssmad.data.layout` into model-ready dicts::

    {"image": (3, h, w) float32, normalised,
     "mask": (1, h, w) float32 0/1 (zeros for normal images),
     "has_mask": bool (False for anomalous images without a ground-truth mask),
     "label": 0/1, "category": str, "defect_type": str, "image_path": str}

:class:`InferenceDataset` does the same for whatever a user hands to ``predict``: a file, a folder, a list of
paths, an array of images or a list of arrays, with the same :class:`~ssmad.data.transforms.Preprocessing`
that was recorded at training time.

Files are decoded once, in ``__getitem__`` (so in DataLoader workers); decoding failures raise
:class:`~ssmad.errors.InputError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from .imageio import is_image_file, read_image, read_mask
from .layout import Check, ImageRecord, discover, list_images
from .record_table import RecordTable
from .transforms import Preprocessing, preprocess_image, preprocess_mask


class AnomalyImageDataset(Dataset):
    """Images (+ masks) of one or several categories, preprocessed for a model.

    Args:
        records: Records from :func:`ssmad.data.layout.discover` (or any iterable of :class:`ImageRecord`); kept
            as a :class:`~ssmad.data.record_table.RecordTable` (``self.records``).
        preprocessing: Geometry and normalisation (default: 256², ImageNet statistics).

    Example:
        >>> ds = AnomalyImageDataset.from_root("datasets/MVTecAD", split="test")  # doctest: +SKIP
        >>> ds[0]["image"].shape  # doctest: +SKIP
        torch.Size([3, 256, 256])
    """

    def __init__(self, records: Iterable[ImageRecord], preprocessing: Preprocessing | None = None) -> None:
        self.records = RecordTable(records)  # arrays, not objects: DataLoader workers share them without copying
        self.preprocessing = preprocessing or Preprocessing()

    @classmethod
    def from_root(
        cls,
        root: str | Path,
        *,
        split: str | None = None,
        categories: Sequence[str] | str | None = None,
        preprocessing: Preprocessing | None = None,
        check: Check = "headers",
        **layout_kwargs: Any,
    ) -> AnomalyImageDataset:
        """Discover a data set (any layout, see :func:`~ssmad.data.layout.discover`) and wrap it."""
        records = discover(root, categories=categories, split=split, check=check, **layout_kwargs)
        return cls(records, preprocessing)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def categories(self) -> list[str]:
        """Sorted distinct categories."""
        return self.records.categories

    @property
    def labels(self) -> np.ndarray:
        """``(n,)`` int64 image labels."""
        return self.records.labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        r = self.records[index]
        pre = self.preprocessing
        img = read_image(r.image_path)
        image = preprocess_image(img, pre)
        h, w = pre.output_hw
        if r.mask_path is not None:
            binary = read_mask(r.mask_path)
            if binary.shape != (img.height, img.width):
                raise InputError(
                    f"the mask {r.mask_path} is {binary.shape[1]}×{binary.shape[0]} (width×height) but its image "
                    f"{r.image_path} is {img.width}×{img.height}. Fix: re-export the mask at the image's size."
                )
            mask = preprocess_mask(binary, pre)
        else:
            mask = torch.zeros(1, h, w, dtype=torch.float32)
        return {
            "image": image,
            "mask": mask,
            "has_mask": r.mask_path is not None or r.label == 0,
            "label": r.label,
            "category": r.category,
            "defect_type": r.defect_type,
            "image_path": str(r.image_path),
        }


def _expand_inputs(inputs: Any) -> list[tuple[Any, str]]:
    """``(source, name)`` pairs from a path, a folder, a list of paths/arrays or a stacked array."""
    if isinstance(inputs, str | Path):
        path = Path(inputs)
        if path.is_dir():
            files = list_images(path)
            if not files:
                raise InputError(f"the folder {path} holds no image files. Fix: point to a folder of images.")
            return [(p, str(p)) for p in files]
        if not path.exists():
            raise InputError(f"the input {path} does not exist. Fix: check the path.")
        if not is_image_file(path):
            raise InputError(
                f"the input {path} is not an image file by its name (suffix {path.suffix!r}). "
                "Fix: pass an image (.png, .jpg, .bmp, .tif …) or a folder of images."
            )
        return [(path, str(path))]
    if hasattr(inputs, "detach"):
        inputs = inputs.detach().cpu().numpy()
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 4 or (
            inputs.ndim == 3 and inputs.shape[-1] not in (1, 3, 4) and inputs.shape[0] not in (1, 3, 4)
        ):
            return [(inputs[i], f"array[{i}]") for i in range(inputs.shape[0])]
        return [(inputs, "array[0]")]
    if isinstance(inputs, Sequence):
        out: list[tuple[Any, str]] = []
        for i, item in enumerate(inputs):
            if isinstance(item, str | Path):
                out += _expand_inputs(item)
            else:
                out.append((item, f"array[{i}]"))
        return out
    # a single Pillow image or array-like
    return [(inputs, "array[0]")]


class InferenceDataset(Dataset):
    """Unlabelled inputs for prediction, preprocessed exactly as at training time.

    Args:
        inputs: An image path, a folder (its images, sorted by name), a list of paths and/or arrays, a stacked
            array ``(N, H, W[, C])`` / ``(N, C, H, W)``, a single array or a Pillow image.
        preprocessing: The preprocessing recorded with the model.

    Items are ``{"image": (3, h, w), "image_path": str, "index": int}``; arrays get the name ``array[i]``.
    A 3-D array is one image when its last axis (or else its first) has 1, 3 or 4 channels, otherwise a
    stack of grayscale images; pass a list to remove any doubt.
    """

    def __init__(self, inputs: Any, preprocessing: Preprocessing | None = None) -> None:
        self.items = _expand_inputs(inputs)
        self.preprocessing = preprocessing or Preprocessing()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, name = self.items[index]
        return {"image": preprocess_image(source, self.preprocessing), "image_path": name, "index": index}
