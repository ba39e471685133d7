"""Turning what callers pass (lists, numpy arrays, torch tensors) into checked numpy arrays.

Every public metric function funnels its inputs through these helpers, so the rules are the same everywhere:

* scores and anomaly maps must be finite real numbers; float16/integer values are promoted to float32/float64,
  float32 and float64 are kept as they are (the ranking of the values, and hence every metric, is unchanged);
* image labels are 0/1 (bool or integers);
* ground-truth masks are bool, integers (``> 0`` is anomalous, so 0/255 PNG masks work) or floats that are
  exactly 0 or 1 (a soft mask must be binarised first, e.g. at 0.5 as the data room does);
* maps and masks are ``(n, H, W)``; ``(n, 1, H, W)`` and a single ``(H, W)`` are accepted and reshaped.

Problems raise :class:`~ssmad.errors.InputError` with a message that names the argument, the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert an array-like (list, tuple, numpy array, torch tensor on any device) to a numpy array.

    Args:
        x: The value.
        name: Argument name, for error messages.

    Returns:
        A numpy array (a view when ``x`` already is one).

    Raises:
        InputError: ``x`` is None or cannot be converted (ragged lists, objects).
    """
    if x is None:
        raise InputError(f"{name} is None. Fix: pass an array, a list or a tensor.")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif isinstance(x, (list, tuple)) and x and all(hasattr(v, "detach") for v in x):
        x = [v.detach().cpu().numpy() for v in x]
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists
        raise InputError(
            f"{name} could not be turned into one array ({err}). Fix: pass equally shaped items, e.g. maps of "
            "one size (resize them first)."
        ) from err
    if arr.dtype == object:
        raise InputError(
            f"{name} holds items of different shapes or non-numeric values. Fix: pass equally shaped numeric "
            "arrays (resize the maps/masks to one size)."
        )
    return arr


def as_scores(x: Any, name: str) -> np.ndarray:
    """Finite real scores as float32/float64, any shape (flattening is up to the caller).

    Raises:
        InputError: Non-numeric, complex or NaN/Inf values, or an empty input.
    """
    arr = to_numpy(x, name)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} must hold real numbers; got dtype {arr.dtype}. Fix: pass float scores.")
    if arr.size == 0:
        raise InputError(f"{name} is empty. Fix: pass at least one value.")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype.itemsize < 4 else np.float64)
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(
            f"{name} holds {bad} NaN/Inf value(s). Fix: check the model output (fp16 overflow is a common cause) "
            "or replace them before scoring."
        )
    return arr


def as_labels(x: Any, name: str) -> np.ndarray:
    """0/1 labels as a bool array.

    Raises:
        InputError: Values other than 0 and 1.
    """
    arr = to_numpy(x, name)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} must hold 0/1 labels; got dtype {arr.dtype}.")
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        raise InputError(
            f"{name} must hold only 0 (normal) and 1 (anomalous); found {np.unique(arr[bad])[:5].tolist()}. "
            "Fix: map the labels to 0/1."
        )
    return arr == 1


def as_masks(x: Any, name: str) -> np.ndarray:
    """Ground-truth masks as a bool array (same shape as given).

    Raises:
        InputError: Float masks with values other than 0/1, or non-numeric values.
    """
    arr = to_numpy(x, name)
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr > 0
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~((arr == 0) | (arr == 1))
        if bad.any():
            raise InputError(
                f"{name} holds soft values (e.g. {float(arr[bad].flat[0]):.3g}); metrics need binary masks. "
                "Fix: binarise them first (mask >= 0.5, as the data room does after resizing)."
            )
        return arr == 1
    raise InputError(f"{name} must be a numeric or bool array; got dtype {arr.dtype}.")


def as_stack(arr: np.ndarray, name: str) -> np.ndarray:
    """Reshape ``(H, W)`` → ``(1, H, W)`` and ``(n, 1, H, W)`` → ``(n, H, W)``.

    Raises:
        InputError: Any other number of dimensions.
    """
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:
        return arr[:, 0]
    if arr.ndim != 3:
        raise InputError(
            f"{name} must be (n, H, W) (or (n, 1, H, W)); got shape {tuple(arr.shape)}. Fix: stack one 2-D map per "
            "image."
        )
    return arr


def maps_and_masks(anomaly_maps: Any, gt_masks: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(n, H, W)`` maps and bool masks of one shape.

    Raises:
        InputError: Shapes differ, or a value check fails.
    """
    maps = as_stack(as_scores(anomaly_maps, "anomaly_maps"), "anomaly_maps")
    masks = as_stack(as_masks(gt_masks, "gt_masks"), "gt_masks")
    if maps.shape != masks.shape:
        raise InputError(
            f"anomaly_maps {tuple(maps.shape)} and gt_masks {tuple(masks.shape)} differ in shape. Fix: resize the "
            "maps to the mask size (or the masks to the map size, then binarise at 0.5)."
        )
    return maps, masks


def as_categories(categories: Any, n: int) -> np.ndarray:
    """Category name per image as a numpy array of str; None means one category called ``"all"``.

    Raises:
        InputError: The count differs from ``n``.
    """
    if categories is None:
        return np.full(n, "all", dtype=object)
    if isinstance(categories, str):
        return np.full(n, categories, dtype=object)
    cats = np.asarray([str(c) for c in _iter(categories)], dtype=object)
    if cats.shape != (n,):
        raise InputError(f"categories has {cats.size} entries for {n} images. Fix: pass one category per image.")
    return cats


def _iter(x: Any) -> Sequence[Any]:
    if hasattr(x, "tolist"):
        return list(np.asarray(x).ravel().tolist())
    return list(x)


def unique_in_order(values: np.ndarray) -> list[str]:
    """Distinct values in order of first appearance."""
    seen: dict[str, None] = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return list(seen)
