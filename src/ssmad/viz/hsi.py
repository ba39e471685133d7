"""Heat maps for hyperspectral detection maps: "image | ground truth | score map | overlay".

A hyperspectral scene has no natural RGB picture and is often small (ABU scenes are 100×100 or 150×150), and
its detection map is judged as a picture of its own (the papers show the colour-mapped score map beside the
ground truth). :func:`hsi_panel` therefore

* builds a displayable image from what it is given: a single band ``(H, W)`` (gray), an RGB ``(H, W, 3)``
  (uint8 kept as is), or the cube itself ``(H, W, B)`` with ``B > 3`` (a false-colour composite of three bands,
  by default at 80 %, 50 % and 20 % of the band range as red, green, blue — long wavelengths red when the bands
  are in ascending order); float data are contrast-stretched per channel between the ``stretch`` percentiles;
* shows the score map colour-mapped on its own and blended over the image;
* enlarges small scenes by an integer factor with nearest-neighbour sampling, so single pixels (sub-pixel
  targets) stay visible and crisp.

Column layout as in :mod:`ssmad.viz.overlays` (columns of width ``W * scale`` separated by ``gap`` pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._io import check_writable
from .overlays import _to_numpy, as_map, as_mask, compose, heat_column, mask_column, normalize_map, save_png

#: Default size (pixels) that small scenes are enlarged towards.
TARGET_SIDE = 256


def _stretch(values: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Per-channel linear stretch of ``(H, W, C)`` floats between two percentiles to uint8 (NaN → 0)."""
    out = np.zeros(values.shape, np.uint8)
    for c in range(values.shape[-1]):
        band = values[..., c]
        finite = np.isfinite(band)
        if not finite.any():
            continue
        lo, hi = np.percentile(band[finite], percentiles)
        if hi <= lo:
            lo, hi = float(band[finite].min()), float(band[finite].max())
        scaled = np.zeros(band.shape) if hi <= lo else (np.where(finite, band, lo) - lo) / (hi - lo)
        out[..., c] = np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def display_image(
    rgb_or_band_image: Any,
    bands: Sequence[int] | int | None = None,
    stretch: Sequence[float] = (2.0, 98.0),
) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 picture of a band, an RGB image or a cube (see the module docstring).

    Args:
        rgb_or_band_image: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, B)`` array/tensor.
        bands: For a cube, one band index (gray) or three (red, green, blue); default 80/50/20 % of the range.
        stretch: Lower and upper percentiles mapped to 0 and 255 for non-uint8 data.

    Raises:
        InputError: Not 2-D/3-D, or a band index outside the cube.
    """
    arr = _to_numpy(rgb_or_band_image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.size == 0:
        raise InputError(
            f"the hyperspectral display image must be (H, W), (H, W, 3) or a cube (H, W, B); got shape {arr.shape}. "
            "Fix: pass one band, an RGB rendering, or the cube in (H, W, B) order."
        )
    n = arr.shape[-1]
    if bands is not None:
        idx = [int(bands)] if np.isscalar(bands) else [int(b) for b in bands]  # type: ignore[arg-type]
        if len(idx) not in (1, 3) or any(not -n <= b < n for b in idx):
            raise InputError(f"bands must be one or three band indices within 0..{n - 1}; got {bands!r}.")
        arr = arr[..., idx]
    elif n not in (1, 3):
        arr = arr[..., [round((n - 1) * f) for f in (0.8, 0.5, 0.2)]]
    if arr.dtype == np.uint8:
        out = arr
    else:
        out = _stretch(arr.astype(np.float64), stretch)
    return np.ascontiguousarray(np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out)


def auto_scale(h: int, w: int, target: int = TARGET_SIDE) -> int:
    """Integer enlargement factor for an ``h × w`` scene: ``max(1, round(target / max(h, w)))``."""
    return max(1, round(target / max(h, w)))


def _enlarge(arr: np.ndarray, scale: int) -> np.ndarray:
    return arr if scale == 1 else np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)


def hsi_panel(
    rgb_or_band_image: Any,
    score_map: Any,
    gt: Any = None,
    *,
    bands: Sequence[int] | int | None = None,
    value_range: Sequence[float] | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    scale: int | None = None,
    stretch: Sequence[float] = (2.0, 98.0),
    gap: int = 4,
    labels: bool = False,
    caption: str | None = None,
) -> np.ndarray:
    """Render "image | ground truth | score map | overlay" for one hyperspectral scene.

    Args:
        rgb_or_band_image: ``(H, W)`` band, ``(H, W, 3)`` RGB or ``(H, W, B)`` cube; ``None`` leaves out the image
            and overlay columns.
        score_map: ``(H, W)`` detection scores (higher = more anomalous).
        gt: ``(H, W)`` ground truth (> 0 = target) or ``None``.
        bands: See :func:`display_image`.
        value_range: Fixed ``(lo, hi)`` colour scale; ``None`` stretches the map to its own range.
        cmap: Matplotlib colour-map name.
        alpha: Weight of the heat map in the overlay column.
        scale: Integer enlargement; default :func:`auto_scale`.
        stretch: Display percentiles for float images.
        gap: White pixels between columns.
        labels: Column names above the columns.
        caption: A line of text above the panel.

    Returns:
        ``(header + H * scale, n_columns * W * scale + gap * (n_columns - 1), 3)`` uint8.

    Raises:
        InputError: Shapes that disagree, a map that is not 2-D, a bad ``scale``.
    """
    scores = as_map(score_map, "score map")
    h, w = scores.shape
    img = None
    if rgb_or_band_image is not None:
        img = display_image(rgb_or_band_image, bands, stretch)
        if img.shape[:2] != (h, w):
            raise InputError(
                f"the image is {img.shape[0]}×{img.shape[1]} pixels but the score map is {h}×{w}. "
                "Fix: pass the cube (or band) the scores were computed from."
            )
    mask = None
    if gt is not None:
        mask = as_mask(gt, "ground truth")
        if mask.shape != (h, w):
            raise InputError(
                f"the ground truth is {mask.shape[0]}×{mask.shape[1]} pixels but the score map is {h}×{w}. "
                "Fix: pass the ground truth of the same scene."
            )
    if scale is None:
        scale = auto_scale(h, w)
    if int(scale) != scale or scale < 1 or not math.isfinite(scale):
        raise InputError(f"scale must be a positive integer; got {scale!r}.")
    scale = int(scale)

    norm = normalize_map(scores, value_range)
    columns: list[np.ndarray] = []
    names: list[str] = []
    if img is not None:
        columns.append(img)
        names.append("image")
    if mask is not None:
        columns.append(mask_column(mask))
        names.append("ground truth")
    columns.append(heat_column(None, norm, cmap))
    names.append("score map")
    if img is not None:
        columns.append(heat_column(img, norm, cmap, alpha))
        names.append("overlay")
    columns = [_enlarge(c, scale) for c in columns]
    return compose(columns, names, gap=gap, labels=labels, caption=caption)


def save_hsi_panel(
    path: str | Path,
    rgb_or_band_image: Any,
    score_map: Any,
    gt: Any = None,
    *,
    overwrite: bool = False,
    labels: bool = True,
    **kwargs: Any,
) -> Path:
    """Render :func:`hsi_panel` and write it as a PNG file atomically (an existing file is kept unless ``overwrite``).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    check_writable(path, overwrite)
    panel = hsi_panel(rgb_or_band_image, score_map, gt, labels=labels, **kwargs)
    return save_png(path, panel, overwrite=overwrite)
