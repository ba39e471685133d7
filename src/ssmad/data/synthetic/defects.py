"""Defects painted on a normal image, each with its exact mask.

Every function takes a ``(H, W, 3)`` uint8 image and a random stream and returns ``(image, mask)``: the
defective image (uint8, same shape) and the ``(H, W)`` bool mask of the pixels the defect covers. Pixels outside
the mask are bit-identical to the input — the defect is computed on the whole image and then copied in through
the mask — so the mask is exact by construction.

==============  ============================================================================================
kind            what it looks like (sizes relative to the image side ``s``)
==============  ============================================================================================
``scratch``     a thin curved line (quadratic Bézier, 25–60 % of ``s`` long, 1–3.5 px wide) blended towards
                white or black, strongest on its centre line
``stain``       a soft irregular blob (radius 6–13 % of ``s``) tinting the texture (dark on light textures,
                light on dark ones) while its structure shows through; the opacity fades to zero at the
                border and the mask is where it is above zero
``hole``        an irregular dark disk (radius 3–7 % of ``s``) with a lighter raised rim, shaded on one side
``cutpaste``    a rectangle (12–25 % of ``s`` per side) of *another* category's texture, coloured with this
                category's palette and matched to the local brightness
``deformation`` a disk (radius 9–16 % of ``s``) warped by a swirl or a bulge/pinch whose displacement falls
                smoothly to zero at the disk border; the mask is the disk
==============  ============================================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...errors import InputError
from .textures import CATEGORIES, category, colourise, random_crop, source_texture, to_uint8

DEFECTS: tuple[str, ...] = ("scratch", "stain", "hole", "cutpaste", "deformation")

DefectFn = Callable[..., tuple[np.ndarray, np.ndarray]]


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return yy, xx


def _apply(base: np.ndarray, new: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = base.copy()
    out[mask] = to_uint8(new)[mask]
    return out


def _irregular_radius(rng: np.random.Generator, angle: np.ndarray, amount: float) -> np.ndarray:
    """A radius factor around 1 varying with ``angle`` by a few random low harmonics."""
    factor = np.ones_like(angle)
    for k in (2, 3, 5):
        factor += amount / k * rng.uniform(-1, 1) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    return factor


def _centre(rng: np.random.Generator, h: int, w: int, margin: float) -> tuple[float, float]:
    return float(rng.uniform(margin, h - margin)), float(rng.uniform(margin, w - margin))


def scratch(base: np.ndarray, rng: np.random.Generator, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """A thin bright or dark curved line."""
    from scipy.spatial import cKDTree

    h, w = base.shape[:2]
    s = min(h, w)
    length = rng.uniform(0.25, 0.6) * s
    theta = rng.uniform(0, np.pi)
    p0 = np.array(_centre(rng, h, w, 0.15 * s))
    d = np.array([np.sin(theta), np.cos(theta)])
    normal = np.array([-d[1], d[0]])
    p2 = p0 + length * d
    p1 = (p0 + p2) / 2 + rng.uniform(-0.3, 0.3) * length * normal
    t = np.linspace(0.0, 1.0, max(8, int(length * 4)))[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    half = max(0.5, rng.uniform(0.006, 0.014) * s) / 2 + 0.25
    yy, xx = _grid(h, w)
    dist, _ = cKDTree(curve).query(np.stack([yy.ravel(), xx.ravel()], axis=1), distance_upper_bound=half + 1)
    dist = dist.reshape(h, w)
    mask = dist <= half
    alpha = rng.uniform(0.5, 0.85) * (1.0 - 0.5 * np.clip(dist / half, 0, 1))
    target = 1.0 if rng.random() < 0.5 else 0.0
    img = base.astype(np.float64) / 255.0
    new = img + alpha[..., None] * (target - img)
    return _apply(base, new, mask), mask


def stain(base: np.ndarray, rng: np.random.Generator, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """A soft irregular tinted blob."""
    h, w = base.shape[:2]
    s = min(h, w)
    radius = rng.uniform(0.06, 0.13) * s
    cy, cx = _centre(rng, h, w, radius)
    yy, xx = _grid(h, w)
    angle = np.arctan2(yy - cy, xx - cx)
    rho = np.hypot(yy - cy, xx - cx) / (radius * _irregular_radius(rng, angle, 0.35))
    opacity = rng.uniform(0.45, 0.8) * np.clip((1.0 - rho) / 0.5, 0.0, 1.0) ** 0.7
    mask = opacity > 0
    img = base.astype(np.float64) / 255.0
    lum = img.mean(axis=-1, keepdims=True)
    # A dark tint (oil, rust, coffee) on light textures and a light one (dried residue) on dark ones, so that
    # the stain differs from the texture under it in brightness as well as colour.
    dark = ((0.30, 0.18, 0.08), (0.12, 0.12, 0.14), (0.45, 0.20, 0.05))
    light = ((0.85, 0.80, 0.60), (0.75, 0.78, 0.82), (0.90, 0.70, 0.45))
    tints = dark if float(lum[mask].mean()) > 0.42 else light
    tint = np.asarray(tints[int(rng.integers(len(tints)))])
    stained = 0.25 * img + 0.75 * tint * (0.75 + 0.5 * lum)
    new = img + opacity[..., None] * (stained - img)
    return _apply(base, new, mask), mask


def hole(base: np.ndarray, rng: np.random.Generator, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """A dark disk with a lighter rim."""
    h, w = base.shape[:2]
    s = min(h, w)
    radius = max(2.0, rng.uniform(0.03, 0.07) * s)
    rim = max(1.0, 0.3 * radius)
    cy, cx = _centre(rng, h, w, radius + rim + 1)
    yy, xx = _grid(h, w)
    angle = np.arctan2(yy - cy, xx - cx)
    r = np.hypot(yy - cy, xx - cx) / _irregular_radius(rng, angle, 0.2)
    inner = r <= radius
    ring = (r > radius) & (r <= radius + rim)
    img = base.astype(np.float64) / 255.0
    light = np.cos(angle - rng.uniform(0, 2 * np.pi))  # shading direction
    depth = 0.12 + 0.06 * light * (r / radius)
    new = img.copy()
    new[inner] = img[inner] * 0.15 + depth[inner, None] * np.array([0.9, 0.85, 0.8])
    new[ring] = np.clip(img[ring] * 1.2 + 0.10 + 0.05 * light[ring, None], 0, 1)
    mask = inner | ring
    return _apply(base, new, mask), mask


def cutpaste(
    base: np.ndarray, rng: np.random.Generator, *, category_name: str = "brick", seed: int = 0, **_: object
) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle of another category's texture in this category's colours."""
    h, w = base.shape[:2]
    s = min(h, w)
    ph = max(3, round(rng.uniform(0.12, 0.25) * s))
    pw = max(3, round(rng.uniform(0.12, 0.25) * s))
    top = int(rng.integers(0, h - ph + 1))
    left = int(rng.integers(0, w - pw + 1))
    others = [c for c in CATEGORIES if c != category_name]
    donor = others[int(rng.integers(len(others)))]
    own = category(category_name) if category_name in CATEGORIES else category(donor)
    donor_cat = category(donor)
    gray = random_crop(source_texture(donor, seed), rng, s, donor_cat.crop_fraction, donor_cat.rot90)
    patch_gray = gray[:ph, :pw]
    img = base.astype(np.float64) / 255.0
    region = img[top : top + ph, left : left + pw]
    patch = colourise(patch_gray, own.palette)
    patch += region.mean(axis=(0, 1)) - patch.mean(axis=(0, 1))  # match the local colour and brightness
    new = img.copy()
    new[top : top + ph, left : left + pw] = patch
    mask = np.zeros((h, w), dtype=bool)
    mask[top : top + ph, left : left + pw] = True
    return _apply(base, new, mask), mask


def deformation(base: np.ndarray, rng: np.random.Generator, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """A local swirl or bulge/pinch warp of a disk."""
    from scipy.ndimage import map_coordinates

    h, w = base.shape[:2]
    s = min(h, w)
    radius = max(3.0, rng.uniform(0.09, 0.16) * s)
    cy, cx = _centre(rng, h, w, radius)
    yy, xx = _grid(h, w)
    dy, dx = yy - cy, xx - cx
    t = np.hypot(dy, dx) / radius
    mask = t < 1.0
    falloff = np.clip(1.0 - t, 0.0, 1.0) ** 2
    if rng.random() < 0.5:  # swirl: rotate by an angle that decays to zero at the border
        phi = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 3.0) * falloff
        sy = cy + dy * np.cos(phi) - dx * np.sin(phi)
        sx = cx + dy * np.sin(phi) + dx * np.cos(phi)
    else:  # bulge (< 1) or pinch (> 1): sample closer to / farther from the centre
        k = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 0.7) * falloff
        sy, sx = cy + dy * k, cx + dx * k
    img = base.astype(np.float64) / 255.0
    new = np.stack(
        [map_coordinates(img[..., c], [sy, sx], order=1, mode="reflect") for c in range(img.shape[-1])], axis=-1
    )
    return _apply(base, new, mask), mask


_FUNCTIONS: dict[str, DefectFn] = {
    "scratch": scratch,
    "stain": stain,
    "hole": hole,
    "cutpaste": cutpaste,
    "deformation": deformation,
}


def apply_defect(
    base: np.ndarray, kind: str, rng: np.random.Generator, *, category_name: str = "brick", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of ``kind`` on ``base``.

    Args:
        base: ``(H, W, 3)`` uint8 normal image.
        kind: one of :data:`DEFECTS`.
        rng: the random stream of this image.
        category_name: the image's category (``cutpaste`` takes its donor texture from another one).
        seed: the data-set seed (selects procedural donor textures).

    Returns:
        ``(image (H, W, 3) uint8, mask (H, W) bool)``; ``image`` equals ``base`` wherever ``mask`` is false and the
        mask is never empty.

    Raises:
        InputError: Unknown ``kind``.
    """
    fn = _FUNCTIONS.get(kind)
    if fn is None:
        raise InputError(f"unknown synthetic defect kind {kind!r}. Fix: use one of {', '.join(DEFECTS)}.")
    for _ in range(20):
        image, mask = fn(base, rng, category_name=category_name, seed=seed)
        if mask.sum() >= 4 and np.any(image[mask] != base[mask]):
            return image, mask
    raise InputError(  # pragma: no cover - needs a degenerate image (e.g. 8×8 pixels)
        f"could not place a visible {kind!r} defect on a {base.shape[1]}×{base.shape[0]} image. Fix: use images of "
        "at least 32×32 pixels."
    )
