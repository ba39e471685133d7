"""Hyperspectral anomaly-detection scores: AUC(D,F) and the 3-D ROC family of Chang (TGRS 2021), spec C.10.

A hyperspectral detector returns one ``(H, W)`` detection map per scene. The map is min-max normalised to
``τ ∈ [0, 1]``; for each threshold ``τ`` the detection probability ``P_D(τ)`` (detected anomalous pixels / all
anomalous pixels) and the false-alarm probability ``P_F(τ)`` (false alarms / all background pixels) trace three
2-D curves of the 3-D ROC:

============  ==================================================  =========================
key           meaning                                             better
============  ==================================================  =========================
``AUC_DF``    area under ``P_D`` vs ``P_F`` (the usual ROC AUC)   higher
``AUC_Dtau``  area under ``P_D`` vs ``τ`` (target detectability)  higher
``AUC_Ftau``  area under ``P_F`` vs ``τ`` (background kept low)   lower
``AUC_TD``    ``AUC_DF + AUC_Dtau``                               higher
``AUC_BS``    ``AUC_DF − AUC_Ftau``                               higher
``AUC_TDBS``  ``AUC_Dtau − AUC_Ftau``                             higher
``AUC_ODP``   ``AUC_Dtau + 1 − AUC_Ftau``                         higher
``AUC_OD``    ``AUC_DF + AUC_Dtau − AUC_Ftau`` (a.k.a. AUC_OA)    higher
``AUC_SNPR``  ``AUC_Dtau / AUC_Ftau``                             higher
============  ==================================================  =========================

Computed the way the Python HAD code bases do it: :func:`sklearn.metrics.roc_curve` with
``drop_intermediate=False`` on the normalised map, the first point (threshold ``+inf``) dropped, then trapezoidal
areas with the thresholds as x-axis; ``AUC_DF`` is :func:`sklearn.metrics.roc_auc_score` (the (0, 0) start
point kept).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError
from ._inputs import as_masks, as_scores
from .curves import trapezoid

logger = logging.getLogger(__name__)

#: Keys of :func:`hsi_metrics`, in table order.
HSI_METRICS = (
    "AUC_DF",
    "AUC_Dtau",
    "AUC_Ftau",
    "AUC_TD",
    "AUC_BS",
    "AUC_TDBS",
    "AUC_ODP",
    "AUC_OD",
    "AUC_SNPR",
)


def hsi_metrics(score_map: Any, gt_map: Any) -> dict[str, float]:
    """3-D ROC areas of one detection map.

    Args:
        score_map: ``(H, W)`` (any shape) detection scores, higher = more anomalous.
        gt_map: Binary ground truth of the same shape (1 = anomalous target pixel).

    Returns:
        ``{key: value}`` for the keys of :data:`HSI_METRICS`. All NaN (with a warning) when the ground truth
        holds a single class; the ``τ``-areas are NaN for a constant map (it has no threshold range).

    Raises:
        InputError: Shapes differ, NaN/Inf scores or a non-binary ground truth.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = as_scores(score_map, "score_map")
    gt = as_masks(gt_map, "gt_map")
    if scores.shape != gt.shape:
        raise InputError(
            f"score_map {scores.shape} and gt_map {gt.shape} differ in shape. Fix: pass the detector's map for the "
            "same scene as the ground truth."
        )
    y, s = gt.reshape(-1), scores.reshape(-1).astype(np.float64)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        logger.warning("3-D ROC undefined: the ground truth holds only one class; returning NaN")
        return dict.fromkeys(HSI_METRICS, float("nan"))
    lo, hi = s.min(), s.max()
    auc_df = float(roc_auc_score(y, s))
    if not hi > lo:
        logger.warning("3-D ROC: constant detection map, the τ-areas are undefined; returning NaN for them")
        out = dict.fromkeys(HSI_METRICS, float("nan"))
        out["AUC_DF"] = auc_df
        return out
    tau = (s - lo) / (hi - lo)
    fpr, tpr, thresholds = roc_curve(y, tau, drop_intermediate=False)
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]  # drop the (+inf) start point
    order = np.argsort(thresholds, kind="stable")  # decreasing → increasing: positive areas
    auc_dtau = trapezoid(thresholds[order], tpr[order])
    auc_ftau = trapezoid(thresholds[order], fpr[order])
    return {
        "AUC_DF": auc_df,
        "AUC_Dtau": auc_dtau,
        "AUC_Ftau": auc_ftau,
        "AUC_TD": auc_df + auc_dtau,
        "AUC_BS": auc_df - auc_ftau,
        "AUC_TDBS": auc_dtau - auc_ftau,
        "AUC_ODP": auc_dtau + 1.0 - auc_ftau,
        "AUC_OD": auc_df + auc_dtau - auc_ftau,
        "AUC_SNPR": auc_dtau / auc_ftau if auc_ftau > 0 else float("inf"),
    }
