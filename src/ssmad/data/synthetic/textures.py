"""Texture categories for the synthetic MVTec-style image sets: real photos and procedural patterns.

Each category has a 512×512 grayscale *source* texture in [0, 1] and a colour *palette*:

============  ====================================================================  =========================
category      source                                                                rot90 allowed
============  ====================================================================  =========================
``brick``     ``skimage.data.brick()`` — a photo of a brick wall (CC0)              no (bricks stay upright)
``grass``     ``skimage.data.grass()`` — a photo of grass (CC0)                     yes
``gravel``    ``skimage.data.gravel()`` — a photo of gravel (CC0)                   yes
``weave``     procedural plain weave: over/under threads with fibre noise           yes
``wood``      procedural wood: growth rings bent by smooth noise, plus fine grain   no (grain stays horizontal)
============  ====================================================================  =========================

A *normal* image is a random crop of the source (half its side by default, so the texture looks the same at
every output size), randomly flipped (and rotated by 90° where allowed), resized to the output size,
brightness-jittered by a few percent, coloured through the palette (a piecewise-linear map from gray to RGB) and
given faint sensor noise. The procedural sources depend on the seed; the photos do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...errors import InputError
from ._common import rng_for, smooth_noise

SOURCE_SIZE = 512


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float64)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0)


def _weave(rng: np.random.Generator, size: int = SOURCE_SIZE) -> np.ndarray:
    """Plain weave: in cell (i, j) the horizontal thread is on top when i + j is even."""
    period = float(rng.uniform(14.0, 18.0))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    # Threads wander a little, as real yarn does.
    xw = x + 1.2 * smooth_noise(rng, (size, size), 12.0)
    yw = y + 1.2 * smooth_noise(rng, (size, size), 12.0)
    u, v = xw / period, yw / period
    fu, fv = u - np.floor(u), v - np.floor(v)
    over = (np.floor(u) + np.floor(v)) % 2 == 0
    # Cross-section of a thread is a bump; along the thread it dips where it passes under the other one.
    horizontal = np.sin(np.pi * fv) ** 0.6 * (0.7 + 0.3 * np.sin(np.pi * fu))
    vertical = np.sin(np.pi * fu) ** 0.6 * (0.7 + 0.3 * np.sin(np.pi * fv))
    fibre_h = smooth_noise(rng, (size, size), (0.6, 6.0))
    fibre_v = smooth_noise(rng, (size, size), (6.0, 0.6))
    val = np.where(over, horizontal + 0.08 * fibre_h, vertical + 0.08 * fibre_v)
    val += 0.05 * smooth_noise(rng, (size, size), 40.0)
    return _normalise(val)


def _wood(rng: np.random.Generator, size: int = SOURCE_SIZE) -> np.ndarray:
    """Wood: sinusoidal growth rings along y, displaced by noise stretched along x, plus fine grain."""
    y = np.arange(size, dtype=np.float64)[:, None]
    ring_period = float(rng.uniform(22.0, 30.0))
    bend = 1.6 * smooth_noise(rng, (size, size), (25.0, 120.0)) + 0.5 * smooth_noise(rng, (size, size), (6.0, 40.0))
    phase = y / ring_period + bend
    rings = (0.5 + 0.5 * np.sin(2.0 * np.pi * phase)) ** 2.5
    grain = smooth_noise(rng, (size, size), (0.7, 14.0))
    val = 0.75 * rings + 0.08 * grain + 0.12 * smooth_noise(rng, (size, size), (40.0, 200.0))
    return _normalise(val)


def _normalise(val: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(val, [0.5, 99.5])
    return np.clip((val - lo) / (hi - lo), 0.0, 1.0)


@dataclass(frozen=True)
class TextureCategory:
    """How one category's images are made.

    Attributes:
        name: the category (folder) name.
        palette: ``(k, 3)`` RGB anchors in [0, 1] for gray levels ``linspace(0, 1, k)``.
        rot90: whether normal images may be rotated by 90°.
        crop_fraction: side of the crop relative to the 512-pixel source.
        photo: the ``skimage.data`` function name for photo textures, else ``None``.
        procedural: the generator for procedural textures, else ``None``.
    """

    name: str
    palette: tuple[tuple[float, float, float], ...]
    rot90: bool
    crop_fraction: float = 0.5
    photo: str | None = None
    procedural: Callable[[np.random.Generator, int], np.ndarray] | None = None


CATEGORIES: dict[str, TextureCategory] = {
    "brick": TextureCategory(
        "brick", ((0.22, 0.09, 0.06), (0.58, 0.27, 0.18), (0.92, 0.78, 0.64)), rot90=False, photo="brick"
    ),
    "grass": TextureCategory(
        "grass", ((0.05, 0.12, 0.03), (0.28, 0.48, 0.12), (0.80, 0.86, 0.46)), rot90=True, photo="grass"
    ),
    "gravel": TextureCategory(
        "gravel", ((0.10, 0.11, 0.14), (0.46, 0.47, 0.52), (0.90, 0.89, 0.86)), rot90=True, photo="gravel"
    ),
    "weave": TextureCategory(
        "weave", ((0.06, 0.08, 0.22), (0.22, 0.32, 0.62), (0.78, 0.82, 0.96)), rot90=True, procedural=_weave
    ),
    "wood": TextureCategory(
        "wood", ((0.36, 0.19, 0.08), (0.64, 0.42, 0.22), (0.88, 0.72, 0.50)), rot90=False, procedural=_wood
    ),
}


def category(name: str) -> TextureCategory:
    """The :class:`TextureCategory` called ``name``.

    Raises:
        InputError: Unknown category.
    """
    try:
        return CATEGORIES[name]
    except KeyError:
        raise InputError(
            f"unknown synthetic texture category {name!r}. Fix: use one of {', '.join(CATEGORIES)}."
        ) from None


@lru_cache(maxsize=32)
def _source_cached(name: str, seed: int) -> np.ndarray:
    cat = category(name)
    if cat.photo is not None:
        src = _photo(cat.photo)
    else:
        assert cat.procedural is not None
        src = cat.procedural(rng_for(seed, "texture", name), SOURCE_SIZE)
    src = src.astype(np.float32)
    src.setflags(write=False)
    return src


def source_texture(name: str, seed: int = 0) -> np.ndarray:
    """The ``(512, 512)`` float32 gray source texture of a category, values in [0, 1] (read-only)."""
    return _source_cached(name, int(seed))


def colourise(gray: np.ndarray, palette: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Map gray levels ``(H, W)`` in [0, 1] to RGB ``(H, W, 3)`` through a piecewise-linear palette."""
    anchors = np.asarray(palette, dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(anchors))
    g = np.clip(gray, 0.0, 1.0)
    return np.stack([np.interp(g, xs, anchors[:, c]) for c in range(3)], axis=-1)


def random_crop(
    source: np.ndarray, rng: np.random.Generator, size: int, crop_fraction: float, rot90: bool
) -> np.ndarray:
    """A random crop of ``source`` (side ``crop_fraction`` × source side), flipped/rotated, resized to ``size``.

    Returns:
        ``(size, size)`` float64 gray values.
    """
    from skimage.transform import resize

    side = max(8, round(source.shape[0] * crop_fraction))
    top = int(rng.integers(0, source.shape[0] - side + 1))
    left = int(rng.integers(0, source.shape[1] - side + 1))
    crop = np.asarray(source[top : top + side, left : left + side], dtype=np.float64)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1, :]
    if rot90 and rng.random() < 0.5:
        crop = np.rot90(crop)
    if side != size:
        crop = resize(crop, (size, size), order=1, anti_aliasing=side > size, mode="reflect")
    return np.ascontiguousarray(crop)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] → uint8 (rounded, clipped)."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def normal_image(name: str, rng: np.random.Generator, size: int, seed: int = 0) -> np.ndarray:
    """One defect-free image of a category.

    Args:
        name: the category.
        rng: the random stream of this image.
        size: output side in pixels.
        seed: the data-set seed (selects the procedural source texture).

    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    cat = category(name)
    gray = random_crop(source_texture(name, seed), rng, size, cat.crop_fraction, cat.rot90)
    gray = gray * rng.uniform(0.93, 1.07) + rng.uniform(-0.03, 0.03)
    rgb = colourise(gray, cat.palette)
    rgb += rng.normal(0.0, 0.006, rgb.shape)
    return to_uint8(rgb)
