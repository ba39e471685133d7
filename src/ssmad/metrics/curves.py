"""Threshold-free binary metrics from one sort: AUROC, AP, F1-max, IoU-max, and the ROC / PRO curve points.

Every threshold-free metric is a function of the confusion counts at each *distinct* score threshold ``t``
(predict "anomalous" when ``score >= t``), walked from the highest threshold to the lowest:

* ``tp(t)`` positives and ``fp(t)`` negatives scoring ``>= t`` — one ``argsort`` and two cumulative sums give them
  for all thresholds at once (tied scores form one threshold, exactly as in scikit-learn);
* optionally ``w(t)``, the cumulative sum of a per-sample weight — with weight ``1 / (R · |region|)`` on every
  anomalous pixel it is the per-region overlap (PRO) of :mod:`.pro` at every threshold, for free.

From these counts (``P`` positives, ``N`` negatives in total):

* AUROC = trapezoidal area under ``(fp/N, tp/P)`` from ``(0, 0)`` — :func:`sklearn.metrics.roc_auc_score`;
* AP = ``Σ_k (R_k − R_{k−1}) · Prec_k`` with ``R = tp/P``, ``Prec = tp/(tp+fp)`` —
  :func:`sklearn.metrics.average_precision_score` (a step sum, no interpolation);
* F1-max = ``max_t 2·Prec·R / (Prec + R)`` over the thresholds of
  :func:`sklearn.metrics.precision_recall_curve`, which simplifies to ``2·tp / (tp + fp + P)`` (0 where
  ``tp = 0``);
* IoU-max = ``max_t tp / (tp + fp + fn) = tp / (fp + P)``.

The same functions serve the exact path (counts from a sort) and the streaming path (counts from histograms,
:mod:`.binned`), so both are one reference-tested code path.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np

from ._inputs import as_labels, as_scores

logger = logging.getLogger(__name__)


class RankCounts(NamedTuple):
    """Cumulative confusion counts at each distinct threshold, highest threshold first.

    Attributes:
        thresholds: ``(k,)`` distinct scores, decreasing; threshold ``k`` predicts ``score >= thresholds[k]``.
        tp: ``(k,)`` int64 positives scoring ``>= thresholds[k]``.
        fp: ``(k,)`` int64 negatives scoring ``>= thresholds[k]``.
        n_pos: Total positives ``P``.
        n_neg: Total negatives ``N``.
        weight: ``(k,)`` float64 cumulative sum of the per-sample weights, or None.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int
    weight: np.ndarray | None = None


def rank_counts(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> RankCounts:
    """Sort once and count, for every distinct score, the positives/negatives (and weights) at or above it.

    Args:
        labels: ``(n,)`` bool, True = positive (anomalous).
        scores: ``(n,)`` finite float scores, higher = more anomalous.
        weights: Optional ``(n,)`` float64 weight per sample (zero for negatives in the PRO use).

    Returns:
        The counts (see :class:`RankCounts`).
    """
    scores = scores.reshape(-1)
    labels = labels.reshape(-1)
    order = np.argsort(scores)[::-1]  # decreasing; the order inside a tie does not matter (ties are grouped)
    s = scores[order]
    ends = np.flatnonzero(s[1:] != s[:-1])  # last index of each tie group but the final one
    ends = np.append(ends, s.size - 1)
    thresholds = s[ends]
    del s
    tp = np.cumsum(labels[order], dtype=np.int64)[ends]
    fp = (ends + 1) - tp
    w = None
    if weights is not None:
        w = np.cumsum(weights.reshape(-1)[order], dtype=np.float64)[ends]
    n_pos = int(tp[-1])
    return RankCounts(thresholds, tp, fp.astype(np.int64), n_pos, int(scores.size - n_pos), w)


# ------------------------------------------------------------------------------------------- metrics of counts
def auroc_of(c: RankCounts) -> float:
    """Area under the ROC curve (NaN unless both classes are present)."""
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    fpr = np.concatenate(([0.0], c.fp / c.n_neg))
    tpr = np.concatenate(([0.0], c.tp / c.n_pos))
    return trapezoid(fpr, tpr)


def average_precision_of(c: RankCounts) -> float:
    """Average precision, scikit-learn's step sum (NaN without positives)."""
    if c.n_pos == 0:
        return float("nan")
    precision = c.tp / (c.tp + c.fp)
    recall_step = np.diff(c.tp, prepend=0) / c.n_pos
    return float(np.sum(recall_step * precision))


def f1_max_of(c: RankCounts) -> tuple[float, float]:
    """Largest F1 over all thresholds and the threshold reaching it (NaNs without positives).

    Returns:
        ``(f1_max, threshold)``; predicting ``score >= threshold`` attains ``f1_max``.
    """
    if c.n_pos == 0:
        return float("nan"), float("nan")
    f1 = 2.0 * c.tp / (c.tp + c.fp + c.n_pos)
    k = int(np.argmax(f1))
    return float(f1[k]), float(c.thresholds[k])


def iou_max_of(c: RankCounts) -> tuple[float, float]:
    """Largest intersection-over-union ``tp / (tp + fp + fn)`` over all thresholds, and its threshold."""
    if c.n_pos == 0:
        return float("nan"), float("nan")
    iou = c.tp / (c.fp + c.n_pos)
    k = int(np.argmax(iou))
    return float(iou[k]), float(c.thresholds[k])


def trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)`` (``x`` non-decreasing)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def area_to_limit(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoidal area under ``y(x)`` over ``[x[0], limit]``, the curve interpolated linearly at ``limit``.

    Args:
        x: ``(k,)`` non-decreasing abscissae, ``x[0] <= limit``.
        y: ``(k,)`` values.
        limit: Right end of the integral.

    Returns:
        The (unnormalised) area; the curve is held flat at its last value when it ends before ``limit``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    k = int(np.searchsorted(x, limit, side="right"))  # first index with x > limit
    if k == 0:
        return 0.0
    if k == x.size:  # the curve ends at or before the limit
        head = trapezoid(x, y) if x.size >= 2 else 0.0
        return float(head + (limit - x[-1]) * y[-1])
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
    head = trapezoid(x[:k], y[:k]) if k >= 2 else 0.0
    return float(head + (limit - x0) * (y0 + y_lim) / 2.0)


# ------------------------------------------------------------------------------------------------ public API
def _counts(labels: Any, scores: Any) -> RankCounts:
    from ..errors import InputError

    y = as_labels(labels, "labels").reshape(-1)
    s = as_scores(scores, "scores").reshape(-1)
    if y.shape != s.shape:
        raise InputError(f"labels ({y.size}) and scores ({s.size}) differ in length. Fix: pass one score per label.")
    return rank_counts(y, s)


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve, equal to :func:`sklearn.metrics.roc_auc_score` (NaN for a single class).

    Args:
        labels: ``(n,)`` 0/1, 1 = anomalous.
        scores: ``(n,)`` higher = more anomalous.
    """
    return auroc_of(_counts(labels, scores))


def average_precision(labels: Any, scores: Any) -> float:
    """Average precision, equal to :func:`sklearn.metrics.average_precision_score` (NaN without positives)."""
    return average_precision_of(_counts(labels, scores))


def f1_max(labels: Any, scores: Any) -> tuple[float, float]:
    """Best F1 over the thresholds of :func:`sklearn.metrics.precision_recall_curve`, and that threshold.

    Returns:
        ``(f1_max, threshold)``: predicting ``score >= threshold`` as anomalous reaches ``f1_max``.
    """
    return f1_max_of(_counts(labels, scores))


def roc_curve_points(labels: Any, scores: Any, max_points: int | None = None) -> dict[str, Any]:
    """ROC curve points for plotting, starting at ``(0, 0)``, and the AUROC.

    Args:
        labels: ``(n,)`` 0/1, 1 = anomalous.
        scores: ``(n,)`` higher = more anomalous.
        max_points: Keep at most this many points (evenly spaced in index, first and last kept); the AUROC is
            computed from all points first.

    Returns:
        ``{"fpr": (k,), "tpr": (k,), "thresholds": (k,), "auc": float}``; ``thresholds[0]`` is ``+inf``.
        Empty arrays and NaN area when only one class is present.
    """
    c = _counts(labels, scores)
    area = auroc_of(c)
    if not np.isfinite(area):
        empty = np.zeros(0)
        return {"fpr": empty, "tpr": empty, "thresholds": empty, "auc": area}
    fpr = np.concatenate(([0.0], c.fp / c.n_neg))
    tpr = np.concatenate(([0.0], c.tp / c.n_pos))
    thr = np.concatenate(([np.inf], c.thresholds.astype(np.float64)))
    keep = thin(fpr.size, max_points)
    return {"fpr": fpr[keep], "tpr": tpr[keep], "thresholds": thr[keep], "auc": area}


def thin(n: int, max_points: int | None) -> np.ndarray | slice:
    """Indices of at most ``max_points`` of ``n`` points, evenly spaced, first and last included."""
    if max_points is None or n <= max_points:
        return slice(None)
    if max_points < 2:
        from ..errors import InputError

        raise InputError(f"max_points must be at least 2; got {max_points}.")
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
