"""ADer's approximate pixel metrics (spec A.10), to put our numbers next to published MambaAD tables.

ADer (the framework MambaAD's official code runs in) computes three pixel metrics on a coarse threshold grid
instead of the exact curves. This module reproduces them — same grids, same comparisons, same epsilons — but
vectorised: each pixel is assigned once to the grid cell its score falls in (``searchsorted``), and the counts
for every threshold follow from cumulative sums, so no loop over thresholds or regions is needed.

* **pixel F1-max / IoU-max**: the maps of one class are min-max normalised over the whole class,
  ``m' = (m − min) / (max − min)``; thresholds ``t = 0, 0.05, …, 1.0`` (21 values, ``np.arange(0, 1 + 1e-3,
  0.05)``); a pixel is predicted anomalous when ``m' > t`` (strict). With TP/FP/FN pooled over all pixels and
  ``ε = 1e-8``: ``P = TP / (TP + FP + ε)``, ``R = TP / (TP + FN + ε)``, ``F1 = 2PR / (P + R + ε)``,
  ``IoU = TP / (|pred ∪ gt| + ε)``; the maximum over the 21 thresholds. A constant map normalises to NaN in ADer,
  which predicts nothing: F1 = IoU = 0 here too.
* **AUPRO**: ``steps`` (100 in the MambaAD configs) thresholds ``np.arange(min, max, (max − min) / steps)`` of the
  raw maps; predicted anomalous when ``m > t``; PRO = mean over all connected GT regions (8-connected) of the
  detected fraction; FPR = FP / normal pixels; keep the points with ``FPR < 0.3``, rescale their FPR min-max to
  [0, 1] and take the trapezoidal area (sklearn ``auc``). The rescaling stretches whatever FPR range the coarse
  grid reached to [0, 1]; the value is therefore not the exact AUPRO (see :mod:`.pro`).

Image metrics and pixel AUROC/AP are plain scikit-learn in ADer, i.e. identical to the ``exact`` definition.
"""

from __future__ import annotations

import logging

import numpy as np

from .curves import trapezoid
from .pro import region_weights

logger = logging.getLogger(__name__)

#: ADer's epsilon in precision, recall, F1 and IoU.
EPS = 1e-8


def ader_f1_iou_max(maps: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """ADer's 21-threshold pixel F1-max and IoU-max on class-min-max-normalised maps.

    Args:
        maps: ``(n, H, W)`` float scores of one class.
        masks: ``(n, H, W)`` bool ground truth.

    Returns:
        ``(f1_max, iou_max)``.
    """
    lo, hi = maps.min(), maps.max()
    if not hi > lo:
        logger.warning("ADer pixel F1/IoU: constant anomaly maps normalise to NaN and predict nothing → 0")
        return 0.0, 0.0
    norm = (maps - lo) / (hi - lo)  # in the maps' dtype, as ADer does
    thresholds = np.arange(0.0, 1.0 + 1e-3, 0.05)
    # A pixel is predicted anomalous at threshold j iff norm > thresholds[j], i.e. iff j < cell, where
    # cell = number of thresholds strictly below its value (comparisons promote to float64, as numpy's ``>``).
    cell = np.searchsorted(thresholds, norm.reshape(-1).astype(np.float64), side="left")
    gt = masks.reshape(-1)
    n_cells = thresholds.size + 1
    pred = _count_above(np.bincount(cell, minlength=n_cells))
    inter = _count_above(np.bincount(cell[gt], minlength=n_cells))
    n_gt = float(np.count_nonzero(gt))
    union = pred + n_gt - inter
    precision = inter / (pred + EPS)
    recall = inter / (n_gt + EPS)
    f1 = 2.0 * precision * recall / (precision + recall + EPS)
    iou = inter / (union + EPS)
    return float(f1.max()), float(iou.max())


def ader_aupro(maps: np.ndarray, masks: np.ndarray, steps: int = 100, fpr_limit: float = 0.3) -> float:
    """ADer's AUPRO: ``steps`` linear thresholds, FPR < limit filter, min-max rescaled FPR, trapezoid.

    Args:
        maps: ``(n, H, W)`` float scores of one class (raw, not normalised).
        masks: ``(n, H, W)`` bool ground truth.
        steps: Number of threshold steps (ADer ``max_step_aupro``; 100 in the MambaAD configs, 200 ADer default).
        fpr_limit: ADer's ``expect_fpr``.

    Returns:
        The value; NaN (with a warning) where ADer would fail or return NaN (constant maps, no region, no normal
        pixel, fewer than two thresholds below the FPR limit or all of them at one FPR).
    """
    weights, n_regions = region_weights(masks)
    gt = masks.reshape(-1)
    n_normal = gt.size - int(np.count_nonzero(gt))
    lo, hi = maps.min(), maps.max()
    if n_regions == 0 or n_normal == 0 or not hi > lo:
        logger.warning("ADer AUPRO undefined (no region, no normal pixel or constant maps); returning NaN")
        return float("nan")
    delta = (hi - lo) / steps
    thresholds = np.arange(lo, hi, delta)
    cell = np.searchsorted(thresholds, maps.reshape(-1), side="left")  # pixel counted for thresholds j < cell
    n_cells = thresholds.size + 1
    fp = _count_above(np.bincount(cell[~gt], minlength=n_cells))
    w = weights.reshape(-1)
    pro = _count_above(np.bincount(cell[gt], weights=w[gt], minlength=n_cells))
    fpr = fp / n_normal
    keep = fpr < fpr_limit
    x, y = fpr[keep], pro[keep]
    if x.size < 2 or not x.max() > x.min():
        logger.warning("ADer AUPRO undefined (fewer than two distinct FPRs below %s); returning NaN", fpr_limit)
        return float("nan")
    x = (x - x.min()) / (x.max() - x.min())
    # thresholds increase → FPR decreases; sklearn's auc integrates in the direction of x, i.e. the same area.
    return trapezoid(x[::-1], y[::-1])


def _count_above(cell_counts: np.ndarray) -> np.ndarray:
    """From counts per cell (cell c = values above exactly c thresholds) to counts above each threshold j."""
    above = np.cumsum(cell_counts[::-1])[::-1]  # above[c] = sum of cells >= c
    return above[1:].astype(np.float64)  # threshold j counts the cells > j
