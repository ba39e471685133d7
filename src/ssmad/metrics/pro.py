"""Per-region overlap (PRO) and its normalised area AUPRO, exact and vectorised.

The PRO curve (Bergmann et al., MVTec AD) rewards finding every defect, large or small. The ground-truth
masks are split into connected regions (8-connected, as ``skimage.measure.label`` with its default
connectivity — the choice of ADer and the MVTec reference; regions never span two images). For a threshold
``t`` (pixels with ``score >= t`` are predicted anomalous):

* ``PRO(t) = (1/R) Σ_r |{p ∈ r : score_p >= t}| / |r|`` — the mean, over all ``R`` regions of all images, of
  the fraction of the region that is detected;
* ``FPR(t)`` = false-positive pixels / all normal pixels (pooled over every image, normal images included).

``AUPRO`` is the area under PRO as a function of FPR, from ``(0, 0)`` to ``FPR = fpr_limit`` (0.3), with the
curve linearly interpolated at the limit, divided by the limit so that it lies in [0, 1] (the ``exact``
definition of the design: what the MVTec reference code and anomalib ≥ the fix of anomalib#3718 compute).

Exact and fast: since ``PRO(t) = Σ_{p anomalous, score_p >= t} w_p`` with ``w_p = 1 / (R · |region(p)|)``,
one sort of all pixels and cumulative sums give PRO and FPR at *every* distinct threshold
(:func:`.curves.rank_counts`), no loop over thresholds or regions. Tied scores are one threshold: the curve
moves diagonally across a tie, like the reference implementation that iterates over unique scores.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import ndimage

from ._inputs import maps_and_masks
from .curves import RankCounts, area_to_limit, rank_counts, thin

logger = logging.getLogger(__name__)

#: 3-D structuring element: 8-connectivity inside each image, no connection between images of the stack.
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True


def label_regions(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 8-connected anomalous regions of each mask, with ids unique across the stack.

    Args:
        masks: ``(n, H, W)`` bool.

    Returns:
        ``(labels, n_regions)``: ``labels`` ``(n, H, W)`` int32 with 0 = normal, ``1..n_regions`` = region id.
    """
    labels, n_regions = ndimage.label(masks, structure=_STRUCTURE)
    return labels, int(n_regions)


def region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-pixel PRO weight ``1 / (R · |region|)`` (0 on normal pixels).

    Args:
        masks: ``(n, H, W)`` bool.

    Returns:
        ``(weights, n_regions)``: ``weights`` ``(n, H, W)`` float64; each region's pixels sum to ``1/R``, so
        all weights together sum to 1.
    """
    labels, n_regions = label_regions(masks)
    inv = np.zeros(n_regions + 1, dtype=np.float64)
    if n_regions:
        sizes = np.bincount(labels.ravel(), minlength=n_regions + 1)
        inv[1:] = 1.0 / (sizes[1:] * float(n_regions))
    return inv[labels], n_regions


def pixel_counts(maps: np.ndarray, masks: np.ndarray) -> tuple[RankCounts, int]:
    """Rank counts of all pixels with the PRO weight attached (one sort for every pixel metric).

    Args:
        maps: ``(n, H, W)`` float scores.
        masks: ``(n, H, W)`` bool.

    Returns:
        ``(counts, n_regions)``; ``counts.weight[k]`` is ``PRO`` at ``counts.thresholds[k]``.
    """
    weights, n_regions = region_weights(masks)
    counts = rank_counts(masks.reshape(-1), maps.reshape(-1), weights.reshape(-1))
    return counts, n_regions


def pro_points(c: RankCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PRO curve ``(fpr, pro, thresholds)`` from ``(0, 0, +inf)`` to ``(1, 1, min score)``."""
    assert c.weight is not None
    fpr = np.concatenate(([0.0], c.fp / c.n_neg))
    pro = np.concatenate(([0.0], np.minimum(c.weight, 1.0)))  # guard the last ulp of the cumulative sum
    thr = np.concatenate(([np.inf], c.thresholds.astype(np.float64)))
    return fpr, pro, thr


def aupro_of(c: RankCounts, n_regions: int, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (NaN without regions or without normal pixels)."""
    if n_regions == 0 or c.n_neg == 0:
        return float("nan")
    fpr, pro, _ = pro_points(c)
    return area_to_limit(fpr, pro, fpr_limit) / fpr_limit


def aupro(anomaly_maps: Any, gt_masks: Any, fpr_limit: float = 0.3) -> float:
    """Exact AUPRO: PRO over 8-connected regions integrated over FPR ∈ [0, ``fpr_limit``], divided by the limit.

    Args:
        anomaly_maps: ``(n, H, W)`` scores, higher = more anomalous.
        gt_masks: ``(n, H, W)`` binary ground truth.
        fpr_limit: Upper FPR bound of the integral, in (0, 1].

    Returns:
        AUPRO in [0, 1]; NaN (with a warning) when there is no anomalous region or no normal pixel.
    """
    _check_limit(fpr_limit)
    maps, masks = maps_and_masks(anomaly_maps, gt_masks)
    counts, n_regions = pixel_counts(maps, masks)
    value = aupro_of(counts, n_regions, fpr_limit)
    if not np.isfinite(value):
        logger.warning("AUPRO is undefined without anomalous regions or without normal pixels; returning NaN")
    return value


def pro_curve(
    anomaly_maps: Any, gt_masks: Any, fpr_limit: float | None = 0.3, max_points: int | None = None
) -> dict[str, Any]:
    """PRO curve points for plotting, and the AUPRO.

    Args:
        anomaly_maps: ``(n, H, W)`` scores.
        gt_masks: ``(n, H, W)`` binary ground truth.
        fpr_limit: Cut the curve at this FPR (the point at the limit is interpolated and included); None keeps
            the whole curve. The AUPRO always uses the limit (0.3 when None).
        max_points: Keep at most this many points (evenly spaced in index, ends kept).

    Returns:
        ``{"fpr": (k,), "pro": (k,), "thresholds": (k,), "aupro": float, "n_regions": int}``
        (``thresholds`` is NaN at an interpolated end point); empty arrays when AUPRO is undefined.
    """
    limit = 0.3 if fpr_limit is None else fpr_limit
    _check_limit(limit)
    maps, masks = maps_and_masks(anomaly_maps, gt_masks)
    counts, n_regions = pixel_counts(maps, masks)
    return pro_curve_of(counts, n_regions, fpr_limit, max_points)


def pro_curve_of(
    c: RankCounts, n_regions: int, fpr_limit: float | None = 0.3, max_points: int | None = None
) -> dict[str, Any]:
    """:func:`pro_curve` from precomputed counts."""
    limit = 0.3 if fpr_limit is None else fpr_limit
    value = aupro_of(c, n_regions, limit)
    if not np.isfinite(value):
        empty = np.zeros(0)
        return {"fpr": empty, "pro": empty, "thresholds": empty, "aupro": value, "n_regions": n_regions}
    fpr, pro, thr = pro_points(c)
    if fpr_limit is not None:
        k = int(np.searchsorted(fpr, fpr_limit, side="right"))
        if k < fpr.size:
            y_lim = pro[k - 1] + (pro[k] - pro[k - 1]) * (fpr_limit - fpr[k - 1]) / (fpr[k] - fpr[k - 1])
            fpr = np.append(fpr[:k], fpr_limit)
            pro = np.append(pro[:k], y_lim)
            thr = np.append(thr[:k], np.nan)
    keep = thin(fpr.size, max_points)
    return {"fpr": fpr[keep], "pro": pro[keep], "thresholds": thr[keep], "aupro": value, "n_regions": n_regions}


def _check_limit(fpr_limit: float) -> None:
    if not 0.0 < float(fpr_limit) <= 1.0:
        from ..errors import InputError

        raise InputError(f"fpr_limit must lie in (0, 1]; got {fpr_limit}. Fix: use the usual 0.3.")
