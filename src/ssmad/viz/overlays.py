"""Heat-map overlays: one picture per image, "image | ground truth | anomaly map | predicted mask".

An anomaly map is a real-valued ``(h, w)`` array (higher = more anomalous) usually at the model's resolution,
while the image it belongs to may be larger. :func:`overlay` brings everything to one size (the image's, or
``size``) and lays the columns that have data side by side, separated by ``gap`` white pixels:

=================  ==========================================================================================
column             content
=================  ==========================================================================================
image              the RGB image (omitted when ``image`` is ``None``)
ground truth       the binary mask, white defect on black (omitted when ``gt_mask`` is ``None``)
anomaly map        the image blended with the colour-mapped, normalised map: ``(1 - alpha) * image + alpha *
                   cmap(norm(map))``; non-finite map pixels show the image unblended. Without an image, the
                   colour-mapped map alone.
predicted mask     the image with the predicted region tinted red and outlined (omitted unless ``pred_mask``
                   or ``threshold`` is given; ``threshold`` applies to the raw map values: ``map >= threshold``)
=================  ==========================================================================================

Normalisation maps the raw values to [0, 1] before the colour map. With ``value_range=(lo, hi)`` every image
uses the same range (values clipped), so colours are comparable between images — use :func:`global_range`
over a set of maps to get one. Without it, each map is stretched to its own minimum and maximum, which makes
every map look "hot" somewhere, even a perfectly normal one.

Column ``k`` of a panel occupies the pixel columns ``[k * (w + gap), k * (w + gap) + w)`` and the rows below
the optional header strip (``labels``/``caption``; :func:`header_height` gives its height).

Everything here is numpy + Pillow + a matplotlib colour map; no figure, no pyplot, no global state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.imageio import array_to_rgb, read_image, read_mask, to_rgb
from ..errors import InputError
from ._io import check_writable, png_bytes, write_bytes_atomic

logger = logging.getLogger(__name__)

#: Colour of the predicted-mask tint and outline.
PRED_COLOR: tuple[int, int, int] = (255, 0, 0)
Size = tuple[int, int]


# ------------------------------------------------------------------------------------------------ conversion
def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_rgb(image: Any) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 array from a path, a Pillow image or an array/tensor (see ``ssmad.data.imageio``)."""
    if isinstance(image, str | Path):
        img = read_image(image)
    elif isinstance(image, Image.Image):
        img = to_rgb(image)
    else:
        img = array_to_rgb(image)
    return np.asarray(img, dtype=np.uint8)


def as_map(anomaly_map: Any, what: str = "anomaly map") -> np.ndarray:
    """A float64 ``(H, W)`` array from ``(H, W)``, ``(1, H, W)`` or ``(H, W, 1)`` input (NaN/Inf kept)."""
    arr = _to_numpy(anomaly_map)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(
            f"the {what} must be one non-empty 2-D array (H, W); got shape {arr.shape}. "
            "Fix: pass one map per image (e.g. maps[i] of an (n, H, W) batch)."
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InputError(f"the {what} must hold numbers; got dtype {arr.dtype}. Fix: pass a float array.")
    return arr.astype(np.float64)


def as_mask(mask: Any, what: str = "mask") -> np.ndarray:
    """A boolean ``(H, W)`` array from a mask file or an array (any value > 0 is a defect; NaN is not)."""
    if isinstance(mask, str | Path):
        return read_mask(mask).astype(bool)
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L"))
    arr = as_map(mask, what)
    return np.nan_to_num(arr, nan=0.0) > 0


# -------------------------------------------------------------------------------------------- normalisation
def global_range(maps: Iterable[Any]) -> tuple[float, float]:
    """The ``(min, max)`` of the finite values of several maps, to pass as ``value_range``.

    Args:
        maps: Maps of any sizes (arrays/tensors), or one ``(n, H, W)`` array.

    Raises:
        InputError: No finite value in any map.
    """
    lo, hi = np.inf, -np.inf
    for m in maps:
        arr = _to_numpy(m).astype(np.float64, copy=False)
        finite = arr[np.isfinite(arr)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not np.isfinite(lo):
        raise InputError("the anomaly maps hold no finite value. Fix: check the model output for NaN/Inf.")
    return lo, hi


def _check_range(value_range: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError) as err:
        raise InputError(f"value_range must be two numbers (lo, hi); got {value_range!r}.") from err
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise InputError(
            f"value_range must be two finite numbers with lo < hi; got ({lo}, {hi}). Fix: use global_range(maps) "
            "or leave value_range unset to normalise each map by its own minimum and maximum."
        )
    return lo, hi


def normalize_map(anomaly_map: Any, value_range: Sequence[float] | None = None) -> np.ndarray:
    """Map raw values to [0, 1]: ``(m - lo) / (hi - lo)`` clipped; NaN where the input is not finite.

    Args:
        anomaly_map: ``(H, W)`` map.
        value_range: Fixed ``(lo, hi)``; ``None`` uses the map's own finite minimum and maximum (a constant map
            then becomes all zeros).

    Returns:
        ``(H, W)`` float64.
    """
    m = as_map(anomaly_map)
    finite = np.isfinite(m)
    if value_range is None:
        if not finite.any():
            return np.full(m.shape, np.nan)
        lo, hi = float(m[finite].min()), float(m[finite].max())
        if hi <= lo:
            return np.where(finite, 0.0, np.nan)
    else:
        lo, hi = _check_range(value_range)
    with np.errstate(invalid="ignore"):
        out = np.clip((m - lo) / (hi - lo), 0.0, 1.0)
    return np.where(finite, out, np.nan)


def colorize(norm: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Colour-map normalised values: ``(H, W)`` in [0, 1] → ``(H, W, 3)`` float64 in [0, 1] (NaN → black)."""
    from matplotlib import colormaps  # the colour-map registry only; no figure, no backend

    try:
        cm = colormaps[cmap]
    except KeyError as err:
        raise InputError(
            f"unknown colour map {cmap!r}. Fix: use a matplotlib name such as 'jet' or 'inferno'."
        ) from err
    finite = np.isfinite(norm)
    rgb = np.asarray(cm(np.where(finite, norm, 0.0)), dtype=np.float64)[..., :3]
    return np.where(finite[..., None], rgb, 0.0)


# ------------------------------------------------------------------------------------------------- resizing
def _resize_rgb(rgb: np.ndarray, size: Size) -> np.ndarray:
    if rgb.shape[:2] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def _resize_float(values: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear resize of a map with NaN: non-finite pixels are resized by nearest neighbour and stay NaN."""
    if values.shape == size:
        return values
    finite = np.isfinite(values)
    fill = float(values[finite].min()) if finite.any() else 0.0
    filled = Image.fromarray(np.where(finite, values, fill).astype(np.float32), mode="F")
    out = np.asarray(filled.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float64)
    if not finite.all():
        keep = _resize_mask(finite, size)
        out = np.where(keep, out, np.nan)
    return out


def _resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    if mask.shape == size:
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * np.uint8(255), mode="L")
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.NEAREST)) > 127


def _check_size(size: Sequence[int] | None) -> Size | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as err:
        raise InputError(f"size must be (height, width); got {size!r}.") from err
    if h < 1 or w < 1:
        raise InputError(f"size must be positive (height, width); got {size!r}.")
    return h, w


# ---------------------------------------------------------------------------------------------- the columns
def heat_column(image: np.ndarray | None, norm: np.ndarray, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """The anomaly-map column: ``(1 - alpha) * image + alpha * cmap(norm)`` rounded to uint8.

    Args:
        image: ``(H, W, 3)`` uint8 or ``None`` (then the colour-mapped map alone, NaN black).
        norm: ``(H, W)`` normalised map in [0, 1], NaN where undefined (those pixels show the image).
        cmap: Matplotlib colour-map name.
        alpha: Weight of the heat map in the blend.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    heat = colorize(norm, cmap) * 255.0
    if image is None:
        return np.rint(heat).astype(np.uint8)
    blend = (1.0 - alpha) * image.astype(np.float64) + alpha * heat
    blend = np.where(np.isfinite(norm)[..., None], blend, image)
    return np.rint(np.clip(blend, 0, 255)).astype(np.uint8)


def mask_column(mask: np.ndarray) -> np.ndarray:
    """A binary mask as an ``(H, W, 3)`` uint8 picture: defect 255 (white), background 0 (black)."""
    return np.repeat((mask.astype(np.uint8) * np.uint8(255))[..., None], 3, axis=-1)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (or on the image border)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def pred_column(image: np.ndarray | None, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The predicted-mask column: the image, tinted red inside ``mask`` and outlined in red.

    Pixels outside ``mask`` are the image unchanged (black without an image).
    """
    base = np.zeros((*mask.shape, 3), np.uint8) if image is None else image
    color = np.asarray(PRED_COLOR, dtype=np.float64)
    tinted = np.rint((1.0 - alpha) * base.astype(np.float64) + alpha * color).astype(np.uint8)
    out = np.where(mask[..., None], tinted, base)
    out[_boundary(mask)] = PRED_COLOR
    return out


# ------------------------------------------------------------------------------------------------ the panel
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def line_height(height: int) -> int:
    """Height in pixels of one header line above columns ``height`` pixels tall: ``height / 20`` within [14, 48]."""
    return max(14, min(48, round(height / 20)))


def header_height(labels: bool, caption: str | None, height: int) -> int:
    """Height in pixels of the header strip above columns ``height`` pixels tall (0 without labels and caption)."""
    return line_height(height) * (int(bool(labels)) + int(bool(caption)))


def compose(
    columns: Sequence[np.ndarray],
    names: Sequence[str] = (),
    *,
    gap: int = 4,
    labels: bool = False,
    caption: str | None = None,
) -> np.ndarray:
    """Lay equally tall ``(H, W_k, 3)`` uint8 columns side by side on white, with an optional text header.

    Args:
        columns: The pictures, left to right.
        names: Column titles drawn when ``labels`` is true.
        gap: White pixels between columns.
        labels: Draw ``names`` above the columns.
        caption: A line of text above everything (e.g. file name and score).

    Returns:
        ``(header_height + H, sum(W_k) + gap * (len(columns) - 1), 3)`` uint8.
    """
    h = columns[0].shape[0]
    if any(c.shape[0] != h for c in columns):
        raise ValueError("columns must have the same height")
    top = header_height(labels, caption, h)
    step = line_height(h)
    width = sum(c.shape[1] for c in columns) + gap * (len(columns) - 1)
    panel = np.full((top + h, width, 3), 255, np.uint8)
    x = 0
    starts = []
    for col in columns:
        panel[top:, x : x + col.shape[1]] = col
        starts.append(x)
        x += col.shape[1] + gap
    if top:
        img = Image.fromarray(panel)
        draw = ImageDraw.Draw(img)
        font = _font(step - 3)
        y = 1
        if caption:
            draw.text((2, y), caption, fill=(0, 0, 0), font=font)
            y += step
        if labels:
            for x0, name in zip(starts, names, strict=False):
                draw.text((x0 + 2, y), name, fill=(0, 0, 0), font=font)
        panel = np.asarray(img)
    return panel


def overlay(
    image: Any,
    anomaly_map: Any,
    gt_mask: Any = None,
    pred_mask: Any = None,
    *,
    value_range: Sequence[float] | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    threshold: float | None = None,
    size: Sequence[int] | None = None,
    gap: int = 4,
    labels: bool = False,
    caption: str | None = None,
) -> np.ndarray:
    """Render "image | ground truth | anomaly map | predicted mask" for one image (the columns that have data).

    Args:
        image: File path, Pillow image or array/tensor ``(H, W)``, ``(H, W, 3|4)``, ``(3, H, W)``; or ``None``.
        anomaly_map: ``(h, w)`` raw scores, any size (resized bilinearly to the panel size).
        gt_mask: Ground-truth mask (path or ``(h', w')`` array, > 0 = defect) or ``None``; resized by nearest.
        pred_mask: Predicted mask (same forms) or ``None``.
        value_range: Fixed ``(lo, hi)`` for the colour scale, e.g. from :func:`global_range`, so that panels are
            comparable; ``None`` stretches each map to its own range.
        cmap: Matplotlib colour-map name.
        alpha: Weight of the heat map (and of the red tint) in the blends.
        threshold: When ``pred_mask`` is ``None``, predict ``anomaly_map >= threshold`` (raw values).
        size: Panel column size ``(height, width)``; default the image's size (the map's without an image).
        gap: White pixels between columns.
        labels: Write the column names above the columns.
        caption: A line of text above the panel.

    Returns:
        ``(header + H, n_columns * W + gap * (n_columns - 1), 3)`` uint8 RGB panel.

    Raises:
        InputError: Unreadable image/mask files, a map that is not 2-D, a bad ``value_range``/``size``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be within [0, 1]; got {alpha}.")
    rgb = None if image is None else as_rgb(image)
    raw = as_map(anomaly_map)
    target = _check_size(size) or (rgb.shape[:2] if rgb is not None else raw.shape)
    if rgb is not None:
        rgb = _resize_rgb(rgb, target)
    norm = _resize_float(normalize_map(raw, value_range), target)

    columns: list[np.ndarray] = []
    names: list[str] = []
    if rgb is not None:
        columns.append(rgb)
        names.append("image")
    if gt_mask is not None:
        columns.append(mask_column(_resize_mask(as_mask(gt_mask, "ground-truth mask"), target)))
        names.append("ground truth")
    columns.append(heat_column(rgb, norm, cmap, alpha))
    names.append("anomaly map")
    if pred_mask is None and threshold is not None:
        with np.errstate(invalid="ignore"):
            pred_mask = raw >= float(threshold)
    if pred_mask is not None:
        columns.append(pred_column(rgb, _resize_mask(as_mask(pred_mask, "predicted mask"), target), alpha))
        names.append("predicted mask")
    return compose(columns, names, gap=gap, labels=labels, caption=caption)


def save_png(path: str | Path, rgb: np.ndarray, overwrite: bool = False) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as a PNG file, atomically; an existing file is kept unless ``overwrite``."""
    return write_bytes_atomic(path, png_bytes(rgb, optimize=False), overwrite=overwrite)


def save_overlay(
    path: str | Path,
    image: Any,
    anomaly_map: Any,
    gt_mask: Any = None,
    pred_mask: Any = None,
    *,
    overwrite: bool = False,
    labels: bool = True,
    **kwargs: Any,
) -> Path:
    """Render :func:`overlay` and write it as a PNG file atomically (never replacing a file unless ``overwrite``).

    Args:
        path: Destination ``.png`` file (parent folders are created).
        image: See :func:`overlay`.
        anomaly_map: See :func:`overlay`.
        gt_mask: See :func:`overlay`.
        pred_mask: See :func:`overlay`.
        overwrite: Replace an existing file.
        labels: Column names above the columns (on by default for files people open on their own).
        **kwargs: Further :func:`overlay` options (``value_range``, ``cmap``, ``alpha``, ``threshold``, ``size``,
            ``gap``, ``caption``).

    Returns:
        The written path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    check_writable(path, overwrite)
    panel = overlay(image, anomaly_map, gt_mask, pred_mask, labels=labels, **kwargs)
    return save_png(path, panel, overwrite=overwrite)
