"""Per-category anomaly-detection metrics and their class mean, in the project's frozen vocabulary.

:func:`evaluate` takes image scores and labels (and optionally pixel maps and masks) for a test set that may
mix several categories, scores every category on its own, and averages over categories — the multi-class
protocol of ADer/MambaAD, where "mAU-ROC" is the mean of the per-class AUROCs (not the AUROC of all classes
pooled; the two differ, Dinomaly#12). The result::

    {
        "image_AUROC": 0.97, "image_AP": ..., "image_F1Max": ...,          # class means
        "pixel_AUROC": ..., "pixel_AP": ..., "pixel_F1Max": ..., "pixel_AUPRO": ...,
        "pixel_IoUMax": ..., "mAD": ...,
        "per_category": {"bottle": {"image_AUROC": ..., ...}, ...},
        "counts": {"bottle": {"n_images": 83, "n_anomalous": 63, "n_anomalous_pixels": ..., "n_regions": ...}},
        "definition": "exact", "metrics_version": "ssmad-metrics/1", "mean_over": "categories",
    }

Rules (recorded here because users compare numbers across tools):

* values are fractions in [0, 1] (tables that show ×100 do the scaling themselves);
* a metric that is undefined for a category (AUROC with a single label class, anything pixel-level without an
  anomalous or without a normal pixel, AP/F1 without positives) is NaN for that category, with a logged warning;
* the class mean **ignores NaN** (``nanmean``) and is NaN only if every category is NaN;
* ``mAD`` is the plain mean of the seven metrics beside it (``image_AUROC … pixel_AUPRO``, not
  ``pixel_IoUMax``) and is NaN if any of them is; it exists only when pixel metrics were computed;
* ``definition="exact"``: sklearn-equal AUROC/AP/F1-max, exact AUPRO to FPR 0.3 (:mod:`.pro`);
  ``definition="ader"``: image and pixel AUROC/AP as exact, pixel F1-max/IoU-max/AUPRO as ADer (:mod:`.ader`);
  ``"binned"`` results come from :class:`StreamingEvaluator` (:mod:`.binned`);
* ``metrics_version`` changes whenever any definition changes, so a ``metrics.json`` always says what produced it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..errors import InputError
from ._inputs import as_categories, as_labels, as_scores, maps_and_masks, unique_in_order
from .ader import ader_aupro, ader_f1_iou_max
from .binned import DEFAULT_BINS, BinnedPixelMetrics
from .curves import (
    RankCounts,
    auroc_of,
    average_precision_of,
    f1_max_of,
    iou_max_of,
    rank_counts,
    thin,
)
from .pro import aupro_of, pixel_counts, pro_curve_of

logger = logging.getLogger(__name__)

#: Version of the metric definitions; stored in every result and metrics.json.
METRICS_VERSION = "ssmad-metrics/1"
#: Selectable definitions of :func:`evaluate`.
DEFINITIONS = ("exact", "ader")
IMAGE_METRICS = ("image_AUROC", "image_AP", "image_F1Max")
PIXEL_METRICS = ("pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO")
#: The seven metrics of the MambaAD tables, in table order; ``mAD`` is their mean.
SEVEN_METRICS = IMAGE_METRICS + PIXEL_METRICS
#: Every metric key a result may hold, in table order.
ALL_METRICS = (*SEVEN_METRICS, "pixel_IoUMax", "mAD")


def evaluate(
    image_scores: Any,
    image_labels: Any,
    anomaly_maps: Any = None,
    gt_masks: Any = None,
    categories: Any = None,
    definition: str = "exact",
    *,
    fpr_limit: float = 0.3,
    ader_aupro_steps: int = 100,
    curves: bool = False,
    curve_points: int = 1000,
) -> dict[str, Any]:
    """Score a test set per category and average over categories (see the module docstring for the rules).

    Args:
        image_scores: ``(n,)`` image anomaly scores, higher = more anomalous (list, array or tensor).
        image_labels: ``(n,)`` 0/1, 1 = anomalous.
        anomaly_maps: Optional ``(n, H, W)`` pixel scores (or a list of ``(H, W)`` maps of one size).
        gt_masks: ``(n, H, W)`` binary masks; needed with ``anomaly_maps`` (normal images: all-zero masks).
        categories: Optional ``(n,)`` category names; None = one category ``"all"``.
        definition: ``"exact"`` or ``"ader"``.
        fpr_limit: FPR limit of AUPRO (0.3).
        ader_aupro_steps: Threshold count of ADer's AUPRO (100 in the MambaAD configs; ADer's default is 200).
        curves: Also return ``"curves"``: ``{category: {"image_roc", "pixel_roc", "pixel_pro"}}`` point arrays for
            plots (exact curves whatever the definition; not written to metrics.json).
        curve_points: Maximum number of points per returned curve.

    Returns:
        The result dictionary (module docstring).

    Raises:
        InputError: Inconsistent lengths or shapes, NaN/Inf scores, non-binary labels or masks, maps without
            masks, or an unknown definition.
    """
    if definition not in DEFINITIONS:
        raise InputError(f"unknown metric definition {definition!r}; choose one of {', '.join(DEFINITIONS)}.")
    scores = as_scores(image_scores, "image_scores").reshape(-1)
    labels = as_labels(image_labels, "image_labels").reshape(-1)
    if scores.shape != labels.shape:
        raise InputError(
            f"image_scores ({scores.size}) and image_labels ({labels.size}) differ in length. Fix: pass one score "
            "and one label per test image."
        )
    n = scores.size
    cats = as_categories(categories, n)
    maps = masks = None
    if (anomaly_maps is None) != (gt_masks is None):
        raise InputError(
            "pixel metrics need both anomaly_maps and gt_masks; only one was given. Fix: pass both (all-zero masks "
            "for normal images) or neither."
        )
    if anomaly_maps is not None:
        maps, masks = maps_and_masks(anomaly_maps, gt_masks)
        if maps.shape[0] != n:
            raise InputError(f"anomaly_maps holds {maps.shape[0]} maps for {n} image scores. Fix: one map per image.")
        _check_label_mask_agreement(labels, masks)

    per_category: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    curve_data: dict[str, dict[str, Any]] = {}
    for cat in unique_in_order(cats):
        sel = cats == cat
        values = image_metrics(labels[sel], scores[sel], category=cat)
        counts[cat] = {"n_images": int(sel.sum()), "n_anomalous": int(labels[sel].sum())}
        if curves:
            curve_data[cat] = {"image_roc": _roc_from_counts(rank_counts(labels[sel], scores[sel]), curve_points)}
        if maps is not None and masks is not None:
            pix, extra = _pixel_metrics(
                maps[sel], masks[sel], definition, fpr_limit, ader_aupro_steps, cat, curves, curve_points
            )
            values.update(pix)
            values["mAD"] = _plain_mean([values[k] for k in SEVEN_METRICS])
            counts[cat].update({"n_anomalous_pixels": extra.pop("n_pos"), "n_regions": extra.pop("n_regions")})
            if curves:
                curve_data[cat].update(extra)
        per_category[cat] = values

    result: dict[str, Any] = {}
    keys = [k for k in ALL_METRICS if k != "mAD" and k in next(iter(per_category.values()))]
    for key in keys:
        result[key] = nanmean([per_category[c][key] for c in per_category])
    if maps is not None:
        result["mAD"] = _plain_mean([result[k] for k in SEVEN_METRICS])
    result.update(
        {
            "per_category": per_category,
            "counts": counts,
            "definition": definition,
            "metrics_version": METRICS_VERSION,
            "mean_over": "categories",
        }
    )
    if definition == "ader":
        result["ader_aupro_steps"] = int(ader_aupro_steps)
    if fpr_limit != 0.3:
        result["fpr_limit"] = float(fpr_limit)
    if curves:
        result["curves"] = curve_data
    return result


def image_metrics(labels: np.ndarray, scores: np.ndarray, category: str = "all") -> dict[str, float]:
    """Exact image AUROC, AP and F1-max of one category (NaN with a warning where undefined).

    Args:
        labels: ``(m,)`` bool.
        scores: ``(m,)`` float.
        category: Name used in warnings.
    """
    c = rank_counts(labels, scores)
    values = {"image_AUROC": auroc_of(c), "image_AP": average_precision_of(c), "image_F1Max": f1_max_of(c)[0]}
    _warn_nan(values, category, f"{c.n_pos} anomalous and {c.n_neg} normal images")
    return values


def _pixel_metrics(
    maps: np.ndarray,
    masks: np.ndarray,
    definition: str,
    fpr_limit: float,
    ader_steps: int,
    category: str,
    curves: bool,
    curve_points: int,
) -> tuple[dict[str, float], dict[str, Any]]:
    c, n_regions = pixel_counts(maps, masks)
    extra: dict[str, Any] = {"n_pos": c.n_pos, "n_regions": n_regions}
    if c.n_pos == 0 or c.n_neg == 0:
        values = dict.fromkeys((*PIXEL_METRICS, "pixel_IoUMax"), float("nan"))
    elif definition == "exact":
        values = {
            "pixel_AUROC": auroc_of(c),
            "pixel_AP": average_precision_of(c),
            "pixel_F1Max": f1_max_of(c)[0],
            "pixel_AUPRO": aupro_of(c, n_regions, fpr_limit),
            "pixel_IoUMax": iou_max_of(c)[0],
        }
    else:
        f1, iou = ader_f1_iou_max(maps, masks)
        values = {
            "pixel_AUROC": auroc_of(c),
            "pixel_AP": average_precision_of(c),
            "pixel_F1Max": f1,
            "pixel_AUPRO": ader_aupro(maps, masks, steps=ader_steps, fpr_limit=fpr_limit),
            "pixel_IoUMax": iou,
        }
    _warn_nan(values, category, f"{c.n_pos} anomalous and {c.n_neg} normal pixels")
    if curves:
        extra["pixel_roc"] = _roc_from_counts(c, curve_points)
        extra["pixel_pro"] = pro_curve_of(c, n_regions, fpr_limit, curve_points)
    return values, extra


def _roc_from_counts(c: RankCounts, max_points: int) -> dict[str, Any]:
    if c.n_pos == 0 or c.n_neg == 0:
        empty = np.zeros(0)
        return {"fpr": empty, "tpr": empty, "thresholds": empty, "auc": float("nan")}
    fpr = np.concatenate(([0.0], c.fp / c.n_neg))
    tpr = np.concatenate(([0.0], c.tp / c.n_pos))
    thr = np.concatenate(([np.inf], c.thresholds.astype(np.float64)))
    keep = thin(fpr.size, max_points)
    return {"fpr": fpr[keep], "tpr": tpr[keep], "thresholds": thr[keep], "auc": auroc_of(c)}


def _check_label_mask_agreement(labels: np.ndarray, masks: np.ndarray) -> None:
    has_defect = masks.reshape(masks.shape[0], -1).any(axis=1)
    bad = np.flatnonzero(has_defect & ~labels)
    if bad.size:
        logger.warning(
            "%d image(s) labelled normal have anomalous mask pixels (first index %d); check the labels/masks",
            bad.size,
            int(bad[0]),
        )


def _warn_nan(values: dict[str, float], category: str, what: str) -> None:
    undefined = [k for k, v in values.items() if not math.isfinite(v)]
    if undefined:
        logger.warning("category %r: %s undefined with %s; set to NaN", category, ", ".join(undefined), what)


def nanmean(values: list[float]) -> float:
    """Mean ignoring NaN; NaN (without a RuntimeWarning) when every value is NaN."""
    finite = [float(v) for v in values if not math.isnan(float(v))]
    return float(np.mean(finite)) if finite else float("nan")


def _plain_mean(values: list[float]) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64)))


# -------------------------------------------------------------------------------------------------- streaming
class StreamingEvaluator:
    """Batch-wise, mergeable counterpart of :func:`evaluate` with binned pixel metrics (``definition="binned"``).

    Image scores are few (one per image) and kept exactly; pixel metrics go through one
    :class:`~.binned.BinnedPixelMetrics` per category, so memory does not grow with the number of images'
    pixels. Shards of a distributed evaluation each fill their own evaluator; :meth:`merge` (or
    :meth:`from_state_dict` of gathered :meth:`state_dict` s) combines them, independent of the split.

    Args:
        n_bins: Bins per category accumulator.
        fpr_limit: FPR limit of AUPRO.
    """

    def __init__(self, n_bins: int = DEFAULT_BINS, fpr_limit: float = 0.3) -> None:
        self.n_bins = int(n_bins)
        self.fpr_limit = float(fpr_limit)
        self.scores: dict[str, list[np.ndarray]] = {}
        self.labels: dict[str, list[np.ndarray]] = {}
        self.pixels: dict[str, BinnedPixelMetrics] = {}

    def update(
        self,
        image_scores: Any,
        image_labels: Any,
        anomaly_maps: Any = None,
        gt_masks: Any = None,
        categories: Any = None,
    ) -> None:
        """Add one batch (same arguments as :func:`evaluate`; maps may be torch tensors on any device)."""
        scores = as_scores(image_scores, "image_scores").reshape(-1).astype(np.float64)
        labels = as_labels(image_labels, "image_labels").reshape(-1)
        if scores.shape != labels.shape:
            raise InputError(f"image_scores ({scores.size}) and image_labels ({labels.size}) differ in length.")
        cats = as_categories(categories, scores.size)
        if (anomaly_maps is None) != (gt_masks is None):
            raise InputError("pixel metrics need both anomaly_maps and gt_masks; only one was given.")
        if anomaly_maps is not None and _n_maps(anomaly_maps) != scores.size:
            raise InputError(
                f"anomaly_maps holds {_n_maps(anomaly_maps)} maps for {scores.size} image scores. Fix: pass a "
                "(B, H, W) batch with one map per image."
            )
        for cat in unique_in_order(cats):
            sel = np.flatnonzero(cats == cat)
            self.scores.setdefault(cat, []).append(scores[sel])
            self.labels.setdefault(cat, []).append(labels[sel])
            if anomaly_maps is not None:
                acc = self.pixels.setdefault(cat, BinnedPixelMetrics(self.n_bins, self.fpr_limit))
                if sel.size == scores.size:
                    acc.update(anomaly_maps, gt_masks)
                else:
                    acc.update(_take(anomaly_maps, sel), _take(gt_masks, sel))

    def merge(self, other: StreamingEvaluator) -> StreamingEvaluator:
        """Add another evaluator's data into this one (in place) and return self."""
        for cat in other.scores:
            self.scores.setdefault(cat, []).extend(other.scores[cat])
            self.labels.setdefault(cat, []).extend(other.labels[cat])
        for cat, acc in other.pixels.items():
            if cat in self.pixels:
                self.pixels[cat].merge(acc)
            else:
                self.pixels[cat] = BinnedPixelMetrics.from_state_dict(acc.state_dict())
        return self

    def state_dict(self) -> dict[str, Any]:
        """Picklable state: per category the concatenated image scores/labels and the pixel accumulator state."""
        return {
            "n_bins": self.n_bins,
            "fpr_limit": self.fpr_limit,
            "categories": {
                cat: {
                    "scores": np.concatenate(self.scores[cat]),
                    "labels": np.concatenate(self.labels[cat]),
                    "pixels": self.pixels[cat].state_dict() if cat in self.pixels else None,
                }
                for cat in self.scores
            },
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> StreamingEvaluator:
        """Rebuild an evaluator from :meth:`state_dict` output."""
        ev = cls(int(state["n_bins"]), float(state["fpr_limit"]))
        for cat, part in state["categories"].items():
            ev.scores[cat] = [np.asarray(part["scores"], dtype=np.float64)]
            ev.labels[cat] = [np.asarray(part["labels"], dtype=bool)]
            if part["pixels"] is not None:
                ev.pixels[cat] = BinnedPixelMetrics.from_state_dict(part["pixels"])
        return ev

    def compute(self) -> dict[str, Any]:
        """The result dictionary of :func:`evaluate`, with ``definition="binned"`` and per-metric error bounds.

        Raises:
            InputError: Nothing was added, or some categories got maps and others did not.
        """
        if not self.scores:
            raise InputError("the evaluator is empty. Fix: call update() with at least one batch first.")
        with_pixels = bool(self.pixels)
        if with_pixels and set(self.pixels) != set(self.scores):
            raise InputError(
                "some categories received anomaly maps and others did not. Fix: pass maps for every batch or none."
            )
        per_category: dict[str, dict[str, float]] = {}
        counts: dict[str, dict[str, int]] = {}
        bounds: dict[str, dict[str, float]] = {}
        for cat in self.scores:
            labels = np.concatenate(self.labels[cat])
            values = image_metrics(labels, np.concatenate(self.scores[cat]), category=cat)
            counts[cat] = {"n_images": int(labels.size), "n_anomalous": int(labels.sum())}
            if with_pixels:
                acc = self.pixels[cat]
                pix = acc.compute()
                _warn_nan(pix, cat, "the binned pixel counts")
                values.update(pix)
                values["mAD"] = _plain_mean([values[k] for k in SEVEN_METRICS])
                counts[cat].update({"n_anomalous_pixels": int(acc.pos.sum()), "n_regions": int(acc.n_regions)})
                bounds[cat] = acc.error_bounds()
            per_category[cat] = values
        result: dict[str, Any] = {}
        for key in (k for k in ALL_METRICS if k != "mAD" and k in next(iter(per_category.values()))):
            result[key] = nanmean([per_category[c][key] for c in per_category])
        if with_pixels:
            result["mAD"] = _plain_mean([result[k] for k in SEVEN_METRICS])
        result.update(
            {
                "per_category": per_category,
                "counts": counts,
                "definition": "binned",
                "metrics_version": METRICS_VERSION,
                "mean_over": "categories",
                "n_bins": self.n_bins,
            }
        )
        if bounds:
            result["error_bounds"] = bounds
        return result


def _n_maps(x: Any) -> int:
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    return 1 if len(shape) == 2 else int(shape[0])


def _take(x: Any, sel: np.ndarray) -> Any:
    if hasattr(x, "index_select"):  # torch tensor: select on its own device
        import torch

        return x.index_select(0, torch.as_tensor(sel, device=x.device))
    return np.asarray(x)[sel]
