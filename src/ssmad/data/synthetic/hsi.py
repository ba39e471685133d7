"""Synthetic hyperspectral anomaly scenes in the style of the ABU data sets, from real reflectance spectra.

A scene is built in five steps (all from one seeded random stream):

1. **Endmembers** — one real spectrum per background material (default soil, vegetation, road, roof: 4
   endmembers), drawn from the shipped ``earthlib`` subset (:mod:`.spectra`), optionally resampled to ``bands``
   bands by linear interpolation over 400–2450 nm.
2. **Abundances** — per endmember a smooth random field (white noise through a Gaussian filter of width
   ``smoothness`` pixels, scaled to unit variance), turned into fractions by a softmax with temperature
   ``1 / sharpness``: large sharpness gives nearly pure patches, small gives broad mixtures.
3. **Targets** — small 4-connected blobs of 1–12 pixels (``target_size``), apart from each other and from the
   image border, each of one target material (default metal or paint; one random spectrum per target). Each
   target pixel is a linear mixture ``(1 − a)·background + a·target`` with a per-target abundance ``a`` drawn
   uniformly from ``target_abundance`` (sub-pixel targets). The ground truth marks every target pixel.
4. **Illumination** — the mixed spectra are multiplied by a smooth brightness field ``1 + illumination·f``
   (``f`` a smooth unit-variance field, clipped to ±2).
5. **Noise** — i.i.d. Gaussian noise of standard deviation ``noise_sigma`` (reflectance units) in every band.

**Urban mosaic background** (``background="mosaic"``, opt-in; the default ``"mixture"`` above is unchanged
byte for byte) replaces steps 1–2 by a mosaic of parcels, see :func:`_mosaic_background`; steps 3–5 (targets,
illumination, noise) are the same.

Difficulty is set by ``target_abundance`` (lower is harder), ``target_fraction``/``n_targets``, ``noise_sigma``
and ``illumination``. At the defaults (100×100×180, about 0.5 % target pixels) global RX reaches an AUC of
0.78 on average (0.61–0.93 over seeds 0–19), leaving room for learned detectors.

:func:`write_abu_mat` stores a scene as a MATLAB v5 ``.mat`` with the ABU keys ``data`` (H, W, B) and ``map``
(H, W), plus ``wavelength`` (nm); :func:`write_hsi_scenes` writes a folder of them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ...errors import InputError
from ._common import check_output_root, check_seed, make_readable, smooth_noise, staged_output
from .spectra import SpectralLibrary, load_spectral_library

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MANIFEST_NAME = "ssmad_synthetic.json"
BACKGROUND_MATERIALS: tuple[str, ...] = ("soil", "vegetation", "road", "roof")
#: Background kinds: smooth abundance fields (the default) or an urban mosaic of single-material parcels.
BACKGROUNDS: tuple[str, ...] = ("mixture", "mosaic")
#: Default materials of the mosaic: every background (non-target) material of the shipped library.
MOSAIC_MATERIALS: tuple[str, ...] = ("soil", "vegetation", "npv", "road", "roof", "concrete")
#: Default mosaic options (see :func:`_mosaic_background`).
MOSAIC_DEFAULTS: dict[str, Any] = {
    "parcel_size": (3, 24),
    "street_width": (1, 3),
    "spectra_per_material": 3,
    "within_variation": 0.3,
    "parcel_gain": 0.1,
    "texture": 0.03,
}
#: Sub-pixel grid of the mosaic layout: parcel edges fall on quarter-pixel positions.
MOSAIC_SUPERSAMPLING = 4
TARGET_MATERIALS: tuple[str, ...] = ("metal", "paint")
MIN_SIDE = 8
_MAT_HEADER_BYTES = 116


class HSIScene(NamedTuple):
    """A synthetic scene; unpacks as ``cube, gt, wavelengths``.

    Attributes:
        cube: ``(H, W, B)`` float32 reflectance.
        gt: ``(H, W)`` uint8, 1 on target pixels.
        wavelengths: ``(B,)`` float32 band centres in nanometres.
    """

    cube: np.ndarray
    gt: np.ndarray
    wavelengths: np.ndarray


@dataclass(frozen=True)
class SceneParts:
    """Every intermediate of a scene (for inspection and tests).

    Attributes:
        cube: ``(H, W, B)`` float32, the final scene.
        gt: ``(H, W)`` uint8 target map.
        wavelengths: ``(B,)`` nanometres.
        background_endmembers: ``(K, B)`` one spectrum per background material.
        background_materials: the K material names.
        abundances: ``(H, W, K)`` background fractions (sum to 1 per pixel).
        target_spectra: ``(T, B)`` one spectrum per target.
        target_materials: the T material names.
        target_abundance: ``(H, W)`` the target fraction ``a`` of each pixel (0 off targets).
        target_labels: ``(H, W)`` int32, 0 off targets, ``t + 1`` on target ``t``.
        illumination: ``(H, W)`` brightness factor.
        clean: ``(H, W, B)`` float32 scene before noise.
        parcels: mosaic only (else ``None``): ``(H, W)`` int32 id of the parcel covering most of each pixel.
        parcel_share: mosaic only: ``(H, W)`` float32 share of the pixel that parcel covers (1 inside parcels,
            below 1 on pixels a parcel edge crosses).
        gain: mosaic only: ``(H, W)`` float32 brightness of the background before illumination (parcel gain ×
            texture); the background spectrum is ``(abundances @ background_endmembers) · gain``.
    """

    cube: np.ndarray
    gt: np.ndarray
    wavelengths: np.ndarray
    background_endmembers: np.ndarray
    background_materials: tuple[str, ...]
    abundances: np.ndarray
    target_spectra: np.ndarray
    target_materials: tuple[str, ...]
    target_abundance: np.ndarray
    target_labels: np.ndarray
    illumination: np.ndarray
    clean: np.ndarray
    parcels: np.ndarray | None = None
    parcel_share: np.ndarray | None = None
    gain: np.ndarray | None = None


def _check_range(value: Sequence[float], name: str, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair (low, high), got {value!r}. Fix: pass e.g. (0.05, 0.3).") from None
    if not lo <= a <= b <= hi:
        raise InputError(f"{name} must satisfy {lo} ≤ low ≤ high ≤ {hi}, got {value!r}. Fix: pass e.g. (0.05, 0.3).")
    return a, b


def _grow_blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """Offsets ``(size, 2)`` of a random 4-connected blob grown from (0, 0)."""
    cells = [(0, 0)]
    taken = {(0, 0)}
    while len(cells) < size:
        frontier = sorted({(y + dy, x + dx) for y, x in cells for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))} - taken)
        cell = frontier[int(rng.integers(len(frontier)))]
        cells.append(cell)
        taken.add(cell)
    return np.asarray(cells, dtype=np.int64)


def _target_sizes(
    rng: np.random.Generator, n_targets: int, target_fraction: float | None, size_range: tuple[int, int], hw: int
) -> list[int]:
    lo, hi = size_range
    if target_fraction is None:
        return [int(s) for s in rng.integers(lo, hi + 1, size=n_targets)]
    total = round(target_fraction * hw)
    if total < 1:
        raise InputError(
            f"target_fraction={target_fraction} gives no target pixel in a scene of {hw} pixels. Fix: raise it to "
            f"at least {1 / hw:.2g} or use n_targets."
        )
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(lo, hi + 1)))
    sizes[-1] -= sum(sizes) - total
    if sizes[-1] < 1:  # pragma: no cover - impossible: the overshoot is below the last size
        sizes.pop()
    return sizes


def _place_targets(rng: np.random.Generator, h: int, w: int, sizes: Sequence[int]) -> np.ndarray:
    """Label map ``(h, w)`` int32 with blob ``t`` marked ``t + 1``; blobs never touch (8-neighbourhood)."""
    labels = np.zeros((h, w), dtype=np.int32)
    blocked = np.zeros((h + 2, w + 2), dtype=bool)  # padded: a blob and its 8-neighbours
    for t, size in enumerate(sizes):
        for _ in range(200):
            offsets = _grow_blob(rng, size)
            offsets -= offsets.min(axis=0)
            bh, bw = offsets.max(axis=0) + 1
            if bh + 2 > h or bw + 2 > w:
                continue
            y0 = int(rng.integers(1, h - bh))
            x0 = int(rng.integers(1, w - bw))
            ys, xs = offsets[:, 0] + y0, offsets[:, 1] + x0
            if blocked[ys + 1, xs + 1].any():
                continue
            labels[ys, xs] = t + 1
            for dy in (0, 1, 2):
                for dx in (0, 1, 2):
                    blocked[ys + dy, xs + dx] = True
            break
        else:
            raise InputError(
                f"cannot place {len(sizes)} separate targets ({sum(sizes)} pixels) in a {h}×{w} scene. Fix: lower "
                "target_fraction or n_targets, or make the scene larger."
            )
    return labels


def _check_mosaic_options(options: dict[str, Any], h: int, w: int) -> dict[str, Any]:
    """Validate the mosaic options (``None`` → :data:`MOSAIC_DEFAULTS`)."""
    opts = {k: (MOSAIC_DEFAULTS[k] if v is None else v) for k, v in options.items()}
    lo, hi = (round(v) for v in _check_range(opts["parcel_size"], "parcel_size", 1, max(h, w)))
    if hi < 2 * lo:
        raise InputError(
            f"parcel_size={opts['parcel_size']!r}: the largest side must be at least twice the smallest so that "
            "too large parcels can be split in two. Fix: pass e.g. (3, 24)."
        )
    street = opts["street_width"]
    if street is not False:
        street = tuple(round(v) for v in _check_range(street, "street_width", 1, max(h, w)))
    k = opts["spectra_per_material"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"spectra_per_material must be a positive integer, got {k!r}. Fix: pass e.g. 3.")
    if not 0.0 <= opts["within_variation"] <= 0.5 or not 0.0 <= opts["parcel_gain"] < 1.0 or not opts["texture"] >= 0:
        raise InputError(
            "within_variation must be in [0, 0.5], parcel_gain in [0, 1) and texture ≥ 0, got "
            f"{opts['within_variation']!r}, {opts['parcel_gain']!r}, {opts['texture']!r}. Fix: use the defaults "
            "(0.3, 0.1, 0.03)."
        )
    return {**opts, "parcel_size": (lo, hi), "street_width": street, "spectra_per_material": int(k)}


def _partition(
    rng: np.random.Generator, h: int, w: int, size: tuple[int, int], street: tuple[int, int] | bool
) -> list[tuple[int, int, int, int, bool]]:
    """Split an ``h × w`` grid into rectangles ``(y0, y1, x0, x1, is_street)`` (guillotine cuts, depth first).

    A rectangle whose longer side exceeds ``size[1]`` is always cut across that side, one whose longer side is at
    least ``2·size[0]`` with probability ½, the cut falling uniformly where both parts keep ``size[0]``. Where the
    longer side exceeds ``2·size[1]`` (a block, not a lot) the cut is a street: a strip ``street`` cells wide.
    """
    lo, hi = size
    out: list[tuple[int, int, int, int, bool]] = []
    stack = [(0, h, 0, w)]
    while stack:
        y0, y1, x0, x1 = stack.pop()
        rows = y1 - y0 >= x1 - x0
        length = (y1 - y0) if rows else (x1 - x0)
        if length <= hi and (length < 2 * lo or rng.random() < 0.5):
            out.append((y0, y1, x0, x1, False))
            continue
        width = 0
        if street is not False and length > 2 * hi:
            width = int(rng.integers(street[0], street[1] + 1))
            if length - width < 2 * lo:
                width = 0
        cut = int(rng.integers(lo, length - lo - width + 1))
        a0, a1, b0 = cut, cut + width, cut + width
        base = y0 if rows else x0
        pieces = [(base, base + a0), (base + b0, base + length)]
        if rows:
            if width:
                out.append((base + a0, base + a1, x0, x1, True))
            stack.extend((p0, p1, x0, x1) for p0, p1 in reversed(pieces))
        else:
            if width:
                out.append((y0, y1, base + a0, base + a1, True))
            stack.extend((y0, y1, p0, p1) for p0, p1 in reversed(pieces))
    return out


def _mosaic_background(
    rng: np.random.Generator,
    h: int,
    w: int,
    pools: dict[str, np.ndarray],
    materials: tuple[str, ...],
    opts: dict[str, Any],
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An urban mosaic background: single-material parcels, mixed only where a parcel edge crosses a pixel.

    Each structural choice follows how the ABU scenes look (AVIRIS/ROSIS/HYDICE images of cities, airports and
    coasts at 1.3–17 m per pixel: blocks of roofs, streets, parking lots and runways, lawns and fields, bare soil,
    sand), not any detector's result:

    * **Parcels** (``parcel_size`` ``(lo, hi)`` pixels per side) — such scenes are tilings of man-made and land
      cover units with straight edges (buildings, lots, runways, fields), so the layout is a guillotine partition
      into axis-aligned rectangles of varied size (:func:`_partition`), not a smooth field. Sides of 3–24 pixels
      span a single roof or lot up to a field or an apron at these resolutions.
    * **Streets** (``street_width`` pixels, ``False`` for none) — the large cuts of a city or an airport are roads
      and runways: long strips crossing a whole block. They take a ``road`` spectrum when ``road`` is among the
      materials (else a material like any parcel).
    * **One material per parcel** — a roof, a lawn or a road is one surface: every parcel draws one material
      (uniformly among ``materials``) and one spectrum of it. A scene holds only ``spectra_per_material``
      spectra of each material (its palette), because the same few roofing and paving products, crops or soils
      recur over many parcels of a real scene; so the background is multi-modal (a few dozen spectra, each
      covering many pixels), not a continuum.
    * **Within-parcel variation** — a surface is not uniform (weathered asphalt, grass of varying vigour, soil
      of varying moisture): each parcel pixel mixes in up to ``within_variation`` of another palette spectrum
      of the *same* material, following a smooth field (width 2 pixels), and its brightness varies by
      ``texture`` (relative standard deviation, a field of width 0.7 pixels: surface roughness, roof facets,
      crown shading).
    * **Parcel brightness** — parcels of one material differ in brightness (roof orientation to the sun, age,
      shade): each parcel's brightness is uniform in ``1 ± parcel_gain``.
    * **Mixed pixels only at edges** — a pixel is a mixture only where a parcel edge crosses its footprint:
      the layout is drawn on a grid :data:`MOSAIC_SUPERSAMPLING` times finer than the pixels, so edges fall at
      sub-pixel positions, and each pixel's abundances are the areas each parcel covers in it (linear mixing).
      Inside a parcel only the same-material variation above mixes spectra.

    Not modelled: the shipped library has no water spectrum, so the water of the beach scenes is absent (bare
    ground such as sand is drawn from the ``soil`` spectra), and there are no cast shadows beyond the parcel
    brightness range.

    Args:
        rng: the scene's random stream.
        h: rows.
        w: columns.
        pools: spectra ``(k, B)`` of each material.
        materials: the background materials.
        opts: validated options (:func:`_check_mosaic_options`).

    Returns:
        ``(endmembers (K, B), their materials (K,), abundances (H, W, K), parcels (H, W) int32,
        parcel_share (H, W), gain (H, W))``; the background is ``(abundances @ endmembers) · gain``.
    """
    from scipy.stats import norm

    f = MOSAIC_SUPERSAMPLING
    palette: list[np.ndarray] = []
    palette_material: list[str] = []
    for m in materials:
        pool = pools[m]
        for i in sorted(rng.choice(len(pool), size=min(opts["spectra_per_material"], len(pool)), replace=False)):
            palette.append(pool[int(i)])
            palette_material.append(m)
    endmembers = np.stack(palette).astype(np.float64)
    of_material = {m: [k for k, pm in enumerate(palette_material) if pm == m] for m in materials}

    lo, hi = opts["parcel_size"]
    street = opts["street_width"]
    street = street if street is False else (street[0] * f, street[1] * f)
    rects = _partition(rng, h * f, w * f, (lo * f, hi * f), street)
    n = len(rects)
    main = np.empty(n, dtype=np.int64)
    partner = np.empty(n, dtype=np.int64)
    for p, (*_, is_street) in enumerate(rects):
        m = "road" if is_street and "road" in of_material else materials[int(rng.integers(len(materials)))]
        choices = of_material[m]
        main[p] = choices[int(rng.integers(len(choices)))]
        others = [k for k in choices if k != main[p]]
        partner[p] = others[int(rng.integers(len(others)))] if others else main[p]
    parcel_gain = rng.uniform(1.0 - opts["parcel_gain"], 1.0 + opts["parcel_gain"], size=n)

    fine = np.empty((h * f, w * f), dtype=np.int64)
    for p, (y0, y1, x0, x1, _) in enumerate(rects):
        fine[y0:y1, x0:x1] = p
    # Area share of every parcel in every pixel: count the fine cells of each parcel in each f × f block.
    pixel = (np.arange(h * f)[:, None] // f) * w + np.arange(w * f)[None, :] // f
    share = np.bincount((pixel * n + fine).ravel(), minlength=h * w * n).reshape(h, w, n) / (f * f)

    variation = opts["within_variation"] * norm.cdf(smooth_noise(rng, (h, w), 2.0))
    texture = 1.0 + opts["texture"] * np.clip(smooth_noise(rng, (h, w), 0.7), -2.0, 2.0)
    abundances = np.zeros((h, w, len(palette)))
    for p in range(n):
        s = share[..., p]
        abundances[..., main[p]] += s * (1.0 - variation)
        abundances[..., partner[p]] += s * variation
    gain = (share @ parcel_gain) * texture
    parcels = share.argmax(axis=-1).astype(np.int32)
    return endmembers, tuple(palette_material), abundances, parcels, share.max(axis=-1), gain


def make_hsi_scene_parts(
    h: int = 100,
    w: int = 100,
    bands: int | None = None,
    n_targets: int = 8,
    target_abundance: Sequence[float] = (0.05, 0.3),
    target_fraction: float | None = None,
    noise_sigma: float = 0.01,
    background_materials: Sequence[str] | None = None,
    target_materials: Sequence[str] = TARGET_MATERIALS,
    target_size: Sequence[int] = (1, 12),
    smoothness: float = 8.0,
    sharpness: float = 3.0,
    illumination: float = 0.05,
    seed: int | Sequence[int] = 0,
    library: SpectralLibrary | None = None,
    *,
    background: str = "mixture",
    parcel_size: Sequence[int] | None = None,
    street_width: Sequence[int] | bool | None = None,
    spectra_per_material: int | None = None,
    within_variation: float | None = None,
    parcel_gain: float | None = None,
    texture: float | None = None,
) -> SceneParts:
    """Build a scene and keep every intermediate; see :func:`make_hsi_scene` for the arguments."""
    for name, side in (("h", h), ("w", w)):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < MIN_SIDE:
            raise InputError(f"scene size {name}={side!r} is too small. Fix: use at least {MIN_SIDE} pixels per side.")
    h, w = int(h), int(w)
    if bands is not None and (isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or bands < 2):
        raise InputError(f"bands must be an integer ≥ 2 or None (all 180), got {bands!r}. Fix: pass e.g. 120.")
    if isinstance(n_targets, bool) or not isinstance(n_targets, (int, np.integer)) or n_targets < 0:
        raise InputError(f"n_targets must be a non-negative integer, got {n_targets!r}. Fix: pass e.g. 8.")
    a_lo, a_hi = _check_range(target_abundance, "target_abundance", 0.0, 1.0)
    s_lo, s_hi = (round(v) for v in _check_range(target_size, "target_size", 1, h * w))
    if target_fraction is not None and not 0.0 < float(target_fraction) < 0.5:
        raise InputError(f"target_fraction must be in (0, 0.5), got {target_fraction!r}. Fix: pass e.g. 0.005.")
    if not noise_sigma >= 0 or not illumination >= 0 or not smoothness > 0 or not sharpness >= 0:
        raise InputError(
            "noise_sigma and illumination must be ≥ 0, smoothness > 0 and sharpness ≥ 0. Fix: use the defaults "
            "(0.01, 0.05, 8, 3)."
        )
    if background not in BACKGROUNDS:
        raise InputError(f"unknown background {background!r}. Fix: use one of {', '.join(BACKGROUNDS)}.")
    mosaic_options = {
        "parcel_size": parcel_size,
        "street_width": street_width,
        "spectra_per_material": spectra_per_material,
        "within_variation": within_variation,
        "parcel_gain": parcel_gain,
        "texture": texture,
    }
    if background == "mosaic":
        mosaic_options = _check_mosaic_options(mosaic_options, h, w)
    elif given := sorted(k for k, v in mosaic_options.items() if v is not None):
        raise InputError(
            f"{', '.join(given)} only apply to background='mosaic', not to {background!r}. Fix: pass "
            "background='mosaic' or drop them."
        )
    if background_materials is None:
        background_materials = MOSAIC_MATERIALS if background == "mosaic" else BACKGROUND_MATERIALS
    background_materials = tuple(background_materials)
    target_materials = tuple(target_materials)
    if not background_materials or (not target_materials and (n_targets or target_fraction)):
        raise InputError("background_materials and target_materials must not be empty. Fix: name at least one each.")
    seeds = [check_seed(s) for s in ((seed,) if np.isscalar(seed) else seed)]
    rng = np.random.default_rng(seeds)

    lib = library or load_spectral_library()
    if bands is not None and int(bands) != lib.wavelengths.size:
        lib = lib.resample(int(bands))
    pools = {m: lib.of(m) for m in (*background_materials, *target_materials)}

    mosaic: dict[str, np.ndarray] = {}
    em_materials = background_materials
    if background == "mosaic":
        endmembers, em_materials, abundances, parcels, share, gain = _mosaic_background(
            rng, h, w, pools, background_materials, mosaic_options
        )
        background_cube = (abundances @ endmembers) * gain[..., None]  # (H, W, B)
        mosaic = {"parcels": parcels, "parcel_share": share.astype(np.float32), "gain": gain.astype(np.float32)}
    else:
        endmembers = np.stack([pools[m][rng.integers(len(pools[m]))] for m in background_materials]).astype(np.float64)
        fields = np.stack([smooth_noise(rng, (h, w), smoothness) for _ in background_materials], axis=-1)
        logits = sharpness * fields
        logits -= logits.max(axis=-1, keepdims=True)
        abundances = np.exp(logits)
        abundances /= abundances.sum(axis=-1, keepdims=True)
        background_cube = abundances @ endmembers  # (H, W, B)

    sizes = _target_sizes(
        rng, int(n_targets), None if target_fraction is None else float(target_fraction), (s_lo, s_hi), h * w
    )
    labels = _place_targets(rng, h, w, sizes)
    t_materials = tuple(target_materials[int(rng.integers(len(target_materials)))] for _ in sizes)
    b = lib.wavelengths.size
    t_spectra = (
        np.stack([pools[m][rng.integers(len(pools[m]))] for m in t_materials]).astype(np.float64)
        if sizes
        else np.zeros((0, b))
    )
    t_abund = rng.uniform(a_lo, a_hi, size=len(sizes))
    a_map = np.zeros((h, w))
    mixed = background_cube.copy()
    on = labels > 0
    a_map[on] = t_abund[labels[on] - 1]
    mixed[on] = (1.0 - a_map[on, None]) * background_cube[on] + a_map[on, None] * t_spectra[labels[on] - 1]

    light = 1.0 + illumination * np.clip(smooth_noise(rng, (h, w), 2.0 * smoothness), -2.0, 2.0)
    clean = mixed * light[..., None]
    cube = clean + rng.normal(0.0, noise_sigma, clean.shape) if noise_sigma > 0 else clean
    return SceneParts(
        cube=cube.astype(np.float32),
        gt=on.astype(np.uint8),
        wavelengths=lib.wavelengths.astype(np.float32),
        background_endmembers=endmembers.astype(np.float32),
        background_materials=tuple(em_materials),
        abundances=abundances.astype(np.float32),
        target_spectra=t_spectra.astype(np.float32),
        target_materials=t_materials,
        target_abundance=a_map.astype(np.float32),
        target_labels=labels,
        illumination=light.astype(np.float32),
        clean=clean.astype(np.float32),
        **mosaic,
    )


def make_hsi_scene(
    h: int = 100,
    w: int = 100,
    bands: int | None = None,
    n_targets: int = 8,
    target_abundance: Sequence[float] = (0.05, 0.3),
    target_fraction: float | None = None,
    noise_sigma: float = 0.01,
    background_materials: Sequence[str] | None = None,
    target_materials: Sequence[str] = TARGET_MATERIALS,
    target_size: Sequence[int] = (1, 12),
    smoothness: float = 8.0,
    sharpness: float = 3.0,
    illumination: float = 0.05,
    seed: int | Sequence[int] = 0,
    *,
    background: str = "mixture",
    parcel_size: Sequence[int] | None = None,
    street_width: Sequence[int] | bool | None = None,
    spectra_per_material: int | None = None,
    within_variation: float | None = None,
    parcel_gain: float | None = None,
    texture: float | None = None,
) -> HSIScene:
    """An ABU-like hyperspectral scene with sub-pixel targets.

    Args:
        h: rows.
        w: columns.
        bands: number of bands, resampled evenly over 400–2450 nm by linear interpolation; ``None`` keeps the
            library's 180 bands (10 nm steps, without the water-absorption gaps 1360–1450 and 1800–1950 nm).
        n_targets: number of targets (ignored when ``target_fraction`` is given).
        target_abundance: ``(low, high)`` range of the per-target mixing fraction ``a``.
        target_fraction: if given, the exact fraction of target pixels (``round(fraction·h·w)`` pixels), split
            into as many targets as needed.
        noise_sigma: standard deviation of the additive Gaussian noise (reflectance units).
        background_materials: materials of the background endmembers (one endmember each, 3–5 is typical):
            soil, vegetation, npv, road, roof, concrete, paint, metal, glass. ``None``: :data:`BACKGROUND_MATERIALS`
            (soil, vegetation, road, roof), or for the mosaic :data:`MOSAIC_MATERIALS` (all six non-target
            materials: soil, vegetation, npv, road, roof, concrete).
        target_materials: materials targets are drawn from.
        target_size: ``(min, max)`` pixels per target blob.
        smoothness: Gaussian width (pixels) of the abundance fields.
        sharpness: softmax gain of the abundance fields (higher: purer patches).
        illumination: relative amplitude of the smooth brightness variation.
        seed: non-negative integer (or sequence of them); the same arguments give identical arrays.
        background: ``"mixture"`` (default: smooth abundance fields of one endmember per material) or
            ``"mosaic"`` (an urban mosaic of single-material parcels; ``smoothness`` and ``sharpness`` are then
            unused). The options below apply to the mosaic only (``None``: :data:`MOSAIC_DEFAULTS`); see
            :func:`_mosaic_background` for what each models.
        parcel_size: ``(min, max)`` parcel side in pixels (max ≥ 2·min; default (3, 24)).
        street_width: ``(min, max)`` width in pixels of the streets cutting large blocks, ``False`` for none
            (default (1, 3)).
        spectra_per_material: spectra of each material in the scene's palette (default 3).
        within_variation: largest share of a second same-material spectrum inside a parcel (default 0.3).
        parcel_gain: parcel brightness is uniform in ``1 ± parcel_gain`` (default 0.1).
        texture: relative standard deviation of the pixel-scale brightness texture (default 0.03).

    Returns:
        :class:`HSIScene` ``(cube (H, W, B) float32, gt (H, W) uint8, wavelengths (B,) float32 nm)``.

    Raises:
        InputError: Bad sizes, ranges, materials, seed or mosaic options, mosaic options without
            ``background="mosaic"``, or targets that do not fit in the scene.
    """
    parts = make_hsi_scene_parts(
        h, w, bands, n_targets, target_abundance, target_fraction, noise_sigma, background_materials,
        target_materials, target_size, smoothness, sharpness, illumination, seed, background=background,
        parcel_size=parcel_size, street_width=street_width, spectra_per_material=spectra_per_material,
        within_variation=within_variation, parcel_gain=parcel_gain, texture=texture,
    )  # fmt: skip
    return HSIScene(parts.cube, parts.gt, parts.wavelengths)


def _mat_bytes(variables: dict[str, np.ndarray]) -> bytes:
    """A MATLAB v5 file as bytes, with a fixed header text (scipy writes the current time there)."""
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, format="5", do_compression=False, oned_as="row")
    raw = bytearray(buf.getvalue())
    text = b"MATLAB 5.0 MAT-file, written by ssmad (synthetic ABU-style scene)"
    raw[:_MAT_HEADER_BYTES] = text.ljust(_MAT_HEADER_BYTES, b" ")
    return bytes(raw)


def write_abu_mat(
    path: str | Path,
    cube: np.ndarray,
    gt: np.ndarray,
    wavelengths: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a cube as an ABU-style MATLAB v5 ``.mat``: ``data`` (H, W, B) float32 and ``map`` (H, W) uint8.

    The file is written atomically and its bytes depend only on the arrays (no time stamp).

    Args:
        path: the ``.mat`` file.
        cube: ``(H, W, B)`` values.
        gt: ``(H, W)`` ground truth (any value > 0 is an anomaly; stored as 0/1).
        wavelengths: optional ``(B,)`` band centres, stored as ``wavelength``.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        InputError: Shapes disagree, or the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    cube = np.asarray(cube)
    gt = np.asarray(gt)
    if cube.ndim != 3 or gt.shape != cube.shape[:2]:
        raise InputError(
            f"cannot write {path}: the cube must be (H, W, B) and the map (H, W), got {cube.shape} and {gt.shape}. "
            "Fix: pass arrays of matching height and width."
        )
    if wavelengths is not None and np.asarray(wavelengths).shape != (cube.shape[2],):
        raise InputError(f"cannot write {path}: {cube.shape[2]} bands but wavelengths of shape "
                         f"{np.asarray(wavelengths).shape}. Fix: pass one wavelength per band.")  # fmt: skip
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; ssmad never overwrites data. Fix: choose another file name or "
                         "pass overwrite=True.")  # fmt: skip
    variables = {"data": cube.astype(np.float32), "map": (gt > 0).astype(np.uint8)}
    if wavelengths is not None:
        variables["wavelength"] = np.asarray(wavelengths, dtype=np.float64)
    data = _mat_bytes(variables)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        make_readable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_hsi_scenes(
    root: str | Path, n_scenes: int = 1, seed: int = 0, overwrite: bool = False, **scene_kwargs: Any
) -> dict[str, Any]:
    """Write ``n_scenes`` scenes as ``<root>/synthetic-<i:03d>.mat`` plus a manifest.

    Scene ``i`` is ``make_hsi_scene(seed=(seed, i), **scene_kwargs)``.

    Args:
        root: output folder; it must be missing or empty unless ``overwrite`` (then files of the same names are
            replaced and nothing else is touched).
        n_scenes: how many scenes.
        seed: non-negative integer.
        overwrite: allow a non-empty ``root``.
        **scene_kwargs: arguments of :func:`make_hsi_scene` (``h``, ``w``, ``bands``, ``noise_sigma`` …).

    Returns:
        A summary: ``root``, ``files`` (names), ``scenes`` (per file: shape, anomaly pixels, targets), ``seed``.

    Raises:
        InputError: Bad arguments or a non-empty ``root`` without ``overwrite``.
    """
    if isinstance(n_scenes, bool) or not isinstance(n_scenes, (int, np.integer)) or n_scenes < 1:
        raise InputError(f"the number of scenes must be a positive integer, got {n_scenes!r}. Fix: pass e.g. 3.")
    seed = check_seed(seed)
    if "seed" in scene_kwargs:
        raise InputError("pass the seed as write_hsi_scenes(seed=...), not among the scene arguments.")
    root = check_output_root(root, overwrite)
    scenes: list[dict[str, Any]] = []
    with staged_output(root) as stage:
        for i in range(int(n_scenes)):
            parts = make_hsi_scene_parts(seed=(seed, i), **scene_kwargs)
            name = f"synthetic-{i:03d}.mat"
            write_abu_mat(stage / name, parts.cube, parts.gt, parts.wavelengths)
            scenes.append(
                {
                    "file": name,
                    "shape": list(parts.cube.shape),
                    "anomaly_pixels": int(parts.gt.sum()),
                    "targets": len(parts.target_materials),
                    "target_materials": list(parts.target_materials),
                    "background_materials": list(parts.background_materials),
                }
            )
            logger.info("synthetic scene %s: %s, %d anomaly pixels", name, parts.cube.shape, int(parts.gt.sum()))
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(scene_kwargs.items())}
        manifest = {
            "generator": "ssmad.data.synthetic.make_hsi_scene",
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "parameters": params,
            "scenes": scenes,
            "spectra": "earthlib 1.1.0 spectral library subset (MIT, (c) 2023 Christopher Anderson)",
        }
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {"root": str(root), "files": [s["file"] for s in scenes], "scenes": scenes, "seed": seed}
