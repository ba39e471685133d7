"""ACMamba's asymmetrical-detection front end: SLIC regions, region statistics, representative samples.

ACMamba trains on *regions*, not pixels (spec C.2): SLIC cuts the min-max-normalised cube into about
``H·W / ψ`` superpixels (ψ = 150 pixels per region), each region is summarised per band by its mean, standard
deviation, minimum and maximum (the "data bank", here :class:`RegionStats`), and every training iteration sees a
fresh *representative sample* per region::

    s_r = clamp(μ_r + 2 · u_r · σ_r, min_r, max_r),   u_r ~ U(−1, 1), one draw per region shared by all bands

so the network never sees individual pixels while training — the source of the paper's training speed-up.

Region statistics are computed without a Python loop over regions: pixels are sorted once by label and reduced
with ``np.add.reduceat`` / ``np.minimum.reduceat`` / ``np.maximum.reduceat`` (mean, two-pass unbiased variance,
extrema). The standard deviation is unbiased (``N − 1``, as ``torch.std`` in the official code); a one-pixel
region, for which the official code yields NaN, gets σ = 0 here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...errors import InputError

__all__ = [
    "RegionStats",
    "homogeneity_ratio",
    "n_segments_for",
    "pixel_regions",
    "region_stats",
    "representative_samples",
    "slic_regions",
]


def n_segments_for(h: int, w: int, psi: float) -> int:
    """SLIC's requested segment count ``floor(H·W / ψ)``.

    Raises:
        InputError: The scene has fewer pixels than ψ, so not even one region can be requested.
    """
    n = math.floor(h * w / psi)
    if n < 1:
        raise InputError(
            f"cube: the scene has {h}×{w} = {h * w} pixels, fewer than the {psi:g} pixels per region (psi) ACMamba "
            "compresses into one superpixel; pass a larger scene or a smaller psi (e.g. psi="
            + str(max(1, h * w // 4))
            + "), or use rx/lrx"
        )
    return n


def slic_regions(
    cube: np.ndarray,
    *,
    psi: float = 150.0,
    compactness: float = 1.0,
    sigma: float = 0.5,
    max_num_iter: int = 10,
) -> np.ndarray:
    """SLIC superpixels of a normalised cube, relabelled ``0 .. N_r − 1`` in SLIC's label order.

    Calls ``skimage.segmentation.slic(cube, n_segments=floor(H·W/ψ), compactness, sigma, channel_axis=-1,
    start_label=1)`` with its defaults otherwise (connectivity enforced). ``convert2lab`` is forced off: skimage
    would otherwise treat a 3-band cube as RGB and convert it to Lab, which means nothing for spectra. The cube is
    passed as float32, as in the official code (its normalised cube is float32): skimage keeps float32 inputs in
    float32 for the smoothing and the k-means, so a float64 input could move pixels at region borders.

    Args:
        cube: ``(H, W, B)`` float cube scaled to ``[0, 1]``.
        psi: Pixels per region (compression ratio ψ).
        compactness: SLIC compactness.
        sigma: Gaussian pre-smoothing of SLIC.
        max_num_iter: SLIC k-means iterations.

    Returns:
        ``(H, W)`` int64 labels, contiguous from 0; ``N_r = labels.max() + 1``.
    """
    from skimage.segmentation import slic

    h, w, _ = cube.shape
    n = n_segments_for(h, w, psi)
    labels = slic(
        np.ascontiguousarray(cube, dtype=np.float32),
        n_segments=n,
        compactness=compactness,
        sigma=sigma,
        max_num_iter=max_num_iter,
        convert2lab=False,
        start_label=1,
        channel_axis=-1,
    )
    _, dense = np.unique(labels, return_inverse=True)  # keep SLIC's label order, close any gaps
    return dense.reshape(h, w).astype(np.int64)


def pixel_regions(h: int, w: int) -> np.ndarray:
    """Every pixel its own region, in raster order (the pixel-level-training ablation): ``(H, W)`` int64."""
    return np.arange(h * w, dtype=np.int64).reshape(h, w)


@dataclass(frozen=True)
class RegionStats:
    """Per-region spectral statistics (the official code's mean/std/min/max "banks").

    Attributes:
        mean: ``(N_r, B)`` region means μ_r.
        std: ``(N_r, B)`` unbiased standard deviations σ_r (0 for one-pixel regions).
        min: ``(N_r, B)`` band-wise minima.
        max: ``(N_r, B)`` band-wise maxima.
        counts: ``(N_r,)`` pixels per region.
    """

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    counts: np.ndarray

    @property
    def n_regions(self) -> int:
        """Number of regions N_r."""
        return int(self.counts.shape[0])


def region_stats(cube: np.ndarray, labels: np.ndarray) -> RegionStats:
    """Mean, unbiased std, min and max of every region, band by band, without a loop over regions.

    Args:
        cube: ``(H, W, B)`` float cube.
        labels: ``(H, W)`` contiguous labels ``0 .. N_r − 1``.

    Returns:
        :class:`RegionStats` in float32.

    Raises:
        ValueError: Labels are not contiguous from 0 or do not match the cube.
    """
    h, w, b = cube.shape
    flat_labels = np.asarray(labels).reshape(-1)
    if flat_labels.shape[0] != h * w:
        raise ValueError(f"labels of shape {np.shape(labels)} do not match the cube's {h}×{w} pixels")
    counts = np.bincount(flat_labels)
    if counts.size == 0 or (counts == 0).any():
        raise ValueError("region labels must be contiguous integers starting at 0")
    order = np.argsort(flat_labels, kind="stable")
    pixels = np.asarray(cube, dtype=np.float64).reshape(h * w, b)[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    mean = np.add.reduceat(pixels, starts, axis=0) / counts[:, None]
    centred = pixels - np.repeat(mean, counts, axis=0)
    ss = np.add.reduceat(centred * centred, starts, axis=0)
    denom = np.maximum(counts - 1, 1)[:, None]
    std = np.sqrt(ss / denom)
    std[counts == 1] = 0.0
    lo = np.minimum.reduceat(pixels, starts, axis=0)
    hi = np.maximum.reduceat(pixels, starts, axis=0)
    f32 = np.float32
    return RegionStats(mean.astype(f32), std.astype(f32), lo.astype(f32), hi.astype(f32), counts)


def homogeneity_ratio(stats: RegionStats) -> float:
    """How well region means stand for their pixels: mean intra-region variance over the variance of the means.

    ``intra = mean_r mean_b var_{p ∈ r}(x_pb)`` (the population variance of each region's pixels, averaged over
    bands and then over regions, every region counting once) and ``inter = mean_b var_r(μ_rb)`` (the population
    variance of the region means across regions, averaged over bands); the ratio is ``intra / inter``. ACMamba
    trains on ``μ_r ± σ_r`` instead of pixels, which assumes ``intra ≪ inter``: a ratio near 0 means homogeneous
    regions well apart, a large one means SLIC regions mix materials (a smaller ψ gives smaller, purer regions).

    Args:
        stats: Region statistics of the normalised cube (:func:`region_stats`; σ is unbiased there, so the
            population variance is ``σ² (n − 1) / n``).

    Returns:
        The ratio (0 when every region is one pixel; ``inf`` when all region means are equal).
    """
    counts = stats.counts.astype(np.float64)[:, None]
    var = stats.std.astype(np.float64) ** 2 * (counts - 1) / counts  # (N_r, B) population variance per region
    intra = float(var.mean())
    inter = float(stats.mean.astype(np.float64).var(axis=0).mean())
    if inter <= 0:
        return math.inf if intra > 0 else 0.0
    return intra / inter


def representative_samples(
    mean: Tensor, std: Tensor, lo: Tensor, hi: Tensor, *, scale: float = 2.0, generator: torch.Generator | None = None
) -> Tensor:
    """Draw one representative spectrum per region: ``clamp(μ + scale·u·σ, min, max)``, ``u ~ U(−1, 1)``.

    One ``u`` per region is shared by all its bands (as in the official code).

    Args:
        mean: ``(..., N_r, B)`` region means.
        std: Same shape, region standard deviations.
        lo: Same shape, region minima.
        hi: Same shape, region maxima.
        scale: Multiplier of σ (2 in the official code).
        generator: Random generator (on the tensors' device) for reproducible draws.

    Returns:
        ``(..., N_r, B)`` samples.
    """
    u = torch.rand((*mean.shape[:-1], 1), generator=generator, device=mean.device, dtype=mean.dtype)
    sample = mean + scale * (2.0 * u - 1.0) * std
    return torch.clamp(sample, lo, hi)
