"""Streaming pixel metrics: fixed-size histograms that are updated per batch and merged across processes.

The exact pixel metrics need every pixel score of a category in memory at once (200 maps of 256×256 are
13 M scores, plus a sort). :class:`BinnedPixelMetrics` instead keeps three histograms over score bins —
normal-pixel counts, anomalous-pixel counts and the summed PRO weight ``1 / |region|`` of anomalous pixels —
so its memory is ``3 × n_bins`` numbers whatever the number of images, and two accumulators (two processes, two
shards) merge by adding histograms.

**Bins without a score range given up front.** The bins live on a power-of-two grid: bin ``i`` covers
``[i · 2^e, (i + 1) · 2^e)``. The exponent ``e`` is the smallest one for which the scores seen so far (their
global min and max) fit in ``n_bins`` consecutive bins. When a later batch widens the range, ``e`` grows and
pairs of bins merge exactly (``i → i >> 1``) — no re-binning of past scores is needed, and nothing is clipped.
Because ``e`` and the window depend only on the global min and max, the final histograms are the same whatever
the order of the batches and however the data are split between processes: ``merge`` of two halves equals one
pass (counts bit-identical; the float PRO sums up to rounding). Scaling by ``2^-e`` is exact in floating point,
so the bin of a score is computed exactly. The resolution is ``2^e ≤ 2 · (max − min) / (n_bins − 1)``; a single
far outlier therefore coarsens every bin — :meth:`error_bounds` reports what that costs.

**Metrics from histograms.** Cumulating the histograms from the top bin down gives the exact confusion counts at
every bin edge (predict ``score >= edge``): the binned curves are a subset of the points of the exact curves,
fed to the same code as the exact path (:mod:`.curves`). Only the order of scores *inside* one bin is lost.

**PRO without per-region state.** ``PRO(t) = (1/R) Σ_{p anomalous, score_p >= t} 1/|region(p)|``: the
accumulator adds ``1/|region|`` per anomalous pixel into its bin and counts regions ``R`` (8-connected, labelled
per image, so regions never straddle batches); dividing by ``R`` at the end gives PRO at every bin edge.
AUPRO therefore streams too.

**Error bound vs exact** (rigorous, computed from the histograms by :meth:`error_bounds`). Let bin ``b`` hold
``P_b`` anomalous and ``N_b`` normal pixels, with ``tp₀, fp₀`` pixels above it. Inside a bin the exact curves can
take any path consistent with these counts, so:

* AUROC: ``|Δ| ≤ ½ Σ_b (P_b / P)(N_b / N)`` (the trapezoid takes half of each bin's rectangle);
* AP: ``|Δ| ≤ Σ_b (P_b / P) · max(hi_b − p_b, p_b − lo_b)`` with the binned precision
  ``p_b = (tp₀+P_b)/(tp₀+P_b+fp₀+N_b)`` and the extreme precisions a positive of the bin can see,
  ``hi_b = (tp₀+P_b)/(tp₀+P_b+fp₀)``, ``lo_b = (tp₀+1)/(tp₀+1+fp₀+N_b)``;
* F1-max / IoU-max: ``0 ≤ exact − binned ≤ max_b 2(tp₀+P_b)/(tp₀+P_b+fp₀+P) − binned`` (resp. ``(tp₀+P_b)/(fp₀+P)``);
* AUPRO: ``|Δ| ≤ (Σ_b ½ ΔFPR_b ΔPRO_b + w · ΔPRO_cross) / limit`` over the bins below the FPR limit, plus the
  bin crossing it (width ``w`` up to the limit).

As a function of the bin count: with a positive-score density at most ``ρ`` (per unit score), ``P_b/P ≤ ρ 2^e``,
so the AUROC error is at most ``½ max_b P_b/P ≤ ρ (max − min) / (n_bins − 1)`` — it falls as ``1/n_bins``. With
the default ``2^15`` bins, maps in [0, 1] get bins of ``2^-15`` and the measured AUROC/AP errors on realistic maps
are ~1e-6 (tests check ≤ 1e-3 and that every bound holds).

Batches may be numpy arrays or torch tensors on any device (the histogram is then computed on that device with
``torch.bincount``; only ``n_bins`` counts and the anomalous pixels' bins travel to the CPU, where the regions are
labelled with scipy).
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np

from ..errors import InputError
from ._inputs import as_masks, as_scores, as_stack
from .curves import (
    RankCounts,
    area_to_limit,
    auroc_of,
    average_precision_of,
    f1_max_of,
    iou_max_of,
    thin,
)
from .pro import label_regions

logger = logging.getLogger(__name__)

#: Default number of bins (3 × 2^15 numbers ≈ 0.8 MB per accumulator).
DEFAULT_BINS = 2**15
#: Finest bin exponent: bins are never narrower than 2^-60.
MIN_EXPONENT = -60
#: Scaled scores stay below 2^52, so their floor is exact in float64 and fits int64.
_MAX_MANTISSA = 52

_STATE_KEYS = ("neg", "pos", "pro", "meta")


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


class BinnedPixelMetrics:
    """Constant-memory, mergeable accumulator of pixel AUROC, AP, F1-max, IoU-max and AUPRO.

    Args:
        n_bins: Number of score bins (at least 16); the error bounds shrink as ``1 / n_bins``.
        fpr_limit: FPR integration limit of AUPRO.

    Example:
        >>> acc = BinnedPixelMetrics()
        >>> for maps, masks in batches:  # doctest: +SKIP
        ...     acc.update(maps, masks)  # (B, H, W) scores, (B, H, W) 0/1
        >>> acc.compute()["pixel_AUROC"]  # doctest: +SKIP
    """

    def __init__(self, n_bins: int = DEFAULT_BINS, fpr_limit: float = 0.3) -> None:
        if int(n_bins) < 16:
            raise InputError(f"n_bins must be at least 16; got {n_bins}.")
        if not 0.0 < fpr_limit <= 1.0:
            raise InputError(f"fpr_limit must lie in (0, 1]; got {fpr_limit}.")
        self.n_bins = int(n_bins)
        self.fpr_limit = float(fpr_limit)
        self.neg = np.zeros(self.n_bins, dtype=np.int64)
        self.pos = np.zeros(self.n_bins, dtype=np.int64)
        self.pro = np.zeros(self.n_bins, dtype=np.float64)
        self.exponent: int | None = None  # bin width 2**exponent; None while empty
        self.offset = 0  # absolute grid index of bin 0
        self.min = math.inf
        self.max = -math.inf
        self.n_regions = 0
        self.n_images = 0

    # ------------------------------------------------------------------------------------------- grid
    def _fits(self, e: int, lo: float, hi: float) -> bool:
        return math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) < self.n_bins

    def _exponent_for(self, lo: float, hi: float) -> int:
        """Smallest exponent ≥ the precision floor for which ``[lo, hi]`` fits in ``n_bins`` bins."""
        mag = max(abs(lo), abs(hi))
        e_floor = MIN_EXPONENT if mag == 0.0 else max(MIN_EXPONENT, math.frexp(mag)[1] - _MAX_MANTISSA)
        e = e_floor
        if hi > lo:
            e = max(e_floor, math.floor(math.log2((hi - lo) / self.n_bins)) - 1)  # a lower bound of the answer
        while not self._fits(e, lo, hi):
            e += 1
        return e

    def _regrid(self, e: int, lo: float) -> None:
        """Move the histograms onto the grid of exponent ``e`` whose window starts at ``lo``'s bin."""
        new_offset = math.floor(math.ldexp(lo, -e))
        if self.exponent is not None and (e != self.exponent or new_offset != self.offset):
            used = np.flatnonzero((self.neg != 0) | (self.pos != 0) | (self.pro != 0))
            absolute = self.offset + used.astype(np.int64)
            shift = e - self.exponent
            if shift < 62:
                target = (absolute >> shift) - new_offset  # arithmetic shift = floor division by 2^shift
            else:  # every |index| < 2^53 collapses to 0 or -1
                target = np.where(absolute >= 0, 0, -1) - new_offset
            for name in ("neg", "pos", "pro"):
                old = getattr(self, name)
                new = np.zeros_like(old)
                np.add.at(new, target, old[used])
                setattr(self, name, new)
        self.exponent, self.offset = e, new_offset

    def _extend(self, lo: float, hi: float) -> None:
        lo, hi = min(self.min, lo), max(self.max, hi)
        self._regrid(self._exponent_for(lo, hi), lo)
        self.min, self.max = lo, hi

    # ----------------------------------------------------------------------------------------- update
    def update(self, anomaly_maps: Any, gt_masks: Any) -> None:
        """Add a batch of maps.

        Args:
            anomaly_maps: ``(B, H, W)`` (or ``(B, 1, H, W)``, ``(H, W)``) scores, numpy or torch (any device).
            gt_masks: Binary masks of the same shape (bool, 0/1 or 0/255), numpy or torch.

        Raises:
            InputError: Shapes differ, NaN/Inf scores, or non-binary masks.
        """
        if _is_tensor(anomaly_maps):
            self._update_torch(anomaly_maps, gt_masks)
            return
        maps = as_stack(as_scores(anomaly_maps, "anomaly_maps"), "anomaly_maps")
        masks = as_stack(as_masks(gt_masks, "gt_masks"), "gt_masks")
        _check_shapes(maps.shape, masks.shape)
        self._extend(float(maps.min()), float(maps.max()))
        assert self.exponent is not None
        x = maps.reshape(-1).astype(np.float64)
        idx = (np.floor(np.ldexp(x, -self.exponent)).astype(np.int64) - self.offset).astype(np.intp)
        gt = masks.reshape(-1)
        both = np.bincount(idx * 2 + gt, minlength=2 * self.n_bins)
        self.neg += both[0::2]
        self.pos += both[1::2]
        self._add_regions(masks, idx[gt])

    def _update_torch(self, anomaly_maps: Any, gt_masks: Any) -> None:
        import torch

        x = anomaly_maps.detach()
        if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64, torch.uint8)):
            raise InputError(f"anomaly_maps must hold real numbers; got {x.dtype}.")
        x = as_stack(x.to(torch.float64), "anomaly_maps")  # as_stack only reshapes, so it works on tensors
        masks_np = as_stack(as_masks(gt_masks, "gt_masks"), "gt_masks")
        _check_shapes(tuple(x.shape), masks_np.shape)
        if not bool(torch.isfinite(x).all()):
            raise InputError("anomaly_maps holds NaN/Inf values. Fix: check the model output (fp16 overflow?).")
        self._extend(float(x.min()), float(x.max()))
        assert self.exponent is not None
        idx = torch.floor(x.reshape(-1) * math.ldexp(1.0, -self.exponent)).to(torch.int64) - self.offset
        gt = torch.as_tensor(masks_np.reshape(-1), device=x.device)
        both = torch.bincount(idx * 2 + gt.to(torch.int64), minlength=2 * self.n_bins).cpu().numpy()
        self.neg += both[0::2]
        self.pos += both[1::2]
        self._add_regions(masks_np, idx[gt].cpu().numpy().astype(np.intp))

    def _add_regions(self, masks: np.ndarray, anomalous_bins: np.ndarray) -> None:
        """Add ``1/|region|`` of every anomalous pixel to its bin and count the batch's regions."""
        self.n_images += masks.shape[0]
        if anomalous_bins.size == 0:
            return
        labels, n_regions = label_regions(masks)
        region_of = labels.reshape(-1)[masks.reshape(-1)]  # same order as anomalous_bins (row-major)
        sizes = np.bincount(region_of, minlength=n_regions + 1)
        inv = np.zeros(n_regions + 1, dtype=np.float64)
        inv[1:] = 1.0 / sizes[1:]
        self.pro += np.bincount(anomalous_bins, weights=inv[region_of], minlength=self.n_bins)
        self.n_regions += n_regions

    # ------------------------------------------------------------------------------------------ merge
    def merge(self, other: BinnedPixelMetrics) -> BinnedPixelMetrics:
        """Add another accumulator's data into this one (in place) and return self.

        Raises:
            InputError: The accumulators differ in ``n_bins`` or ``fpr_limit``.
        """
        if other.n_bins != self.n_bins or other.fpr_limit != self.fpr_limit:
            raise InputError(
                f"cannot merge accumulators with n_bins {self.n_bins} vs {other.n_bins} or fpr_limit "
                f"{self.fpr_limit} vs {other.fpr_limit}. Fix: create every shard's accumulator with the same settings."
            )
        if other.exponent is None:
            return self
        other = copy.deepcopy(other)
        lo, hi = min(self.min, other.min), max(self.max, other.max)
        e = self._exponent_for(lo, hi)
        self._regrid(e, lo)
        other._regrid(e, lo)
        self.min, self.max = lo, hi
        self.neg += other.neg
        self.pos += other.pos
        self.pro += other.pro
        self.n_regions += other.n_regions
        self.n_images += other.n_images
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """The whole state as numpy arrays (for ``torch.distributed`` gathers, files, pickling)."""
        meta = np.array(
            [
                self.n_bins,
                -(2**62) if self.exponent is None else self.exponent,
                self.offset,
                self.n_regions,
                self.n_images,
            ],
            dtype=np.int64,
        )
        return {
            "neg": self.neg.copy(),
            "pos": self.pos.copy(),
            "pro": self.pro.copy(),
            "meta": meta,
            "range": np.array([self.min, self.max, self.fpr_limit], dtype=np.float64),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> BinnedPixelMetrics:
        """Rebuild an accumulator from :meth:`state_dict` output."""
        meta = np.asarray(state["meta"], dtype=np.int64)
        rng = np.asarray(state["range"], dtype=np.float64)
        acc = cls(int(meta[0]), float(rng[2]))
        acc.neg = np.asarray(state["neg"], dtype=np.int64).copy()
        acc.pos = np.asarray(state["pos"], dtype=np.int64).copy()
        acc.pro = np.asarray(state["pro"], dtype=np.float64).copy()
        acc.exponent = None if int(meta[1]) == -(2**62) else int(meta[1])
        acc.offset, acc.n_regions, acc.n_images = int(meta[2]), int(meta[3]), int(meta[4])
        acc.min, acc.max = float(rng[0]), float(rng[1])
        return acc

    # ---------------------------------------------------------------------------------------- compute
    def counts(self) -> RankCounts:
        """Confusion counts at every non-empty bin's lower edge, highest edge first (``weight`` = PRO)."""
        used = np.flatnonzero((self.neg != 0) | (self.pos != 0))[::-1]
        e = 0 if self.exponent is None else self.exponent
        edges = np.ldexp((self.offset + used).astype(np.float64), e)
        tp = np.cumsum(self.pos[used])
        fp = np.cumsum(self.neg[used])
        weight = np.cumsum(self.pro[used]) / max(self.n_regions, 1)
        n_pos = int(tp[-1]) if tp.size else 0
        n_neg = int(fp[-1]) if fp.size else 0
        return RankCounts(edges, tp, fp, n_pos, n_neg, weight)

    def compute(self) -> dict[str, float]:
        """Pixel metrics from the histograms (NaN where undefined: a single class, no region).

        Returns:
            ``{"pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO", "pixel_IoUMax"}``.
        """
        c = self.counts()
        if c.n_pos == 0 or c.n_neg == 0:
            nan = float("nan")
            return dict.fromkeys(("pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO", "pixel_IoUMax"), nan)
        fpr, pro = self._pro_points(c)
        aupro = area_to_limit(fpr, pro, self.fpr_limit) / self.fpr_limit if self.n_regions else float("nan")
        return {
            "pixel_AUROC": auroc_of(c),
            "pixel_AP": average_precision_of(c),
            "pixel_F1Max": f1_max_of(c)[0],
            "pixel_AUPRO": aupro,
            "pixel_IoUMax": iou_max_of(c)[0],
        }

    def _pro_points(self, c: RankCounts) -> tuple[np.ndarray, np.ndarray]:
        assert c.weight is not None
        fpr = np.concatenate(([0.0], c.fp / max(c.n_neg, 1)))
        pro = np.concatenate(([0.0], np.minimum(c.weight, 1.0)))
        return fpr, pro

    def error_bounds(self) -> dict[str, float]:
        """Upper bounds of ``|binned − exact|`` for each metric, from the histograms alone (see module docs).

        Returns:
            Same keys as :meth:`compute`; NaN where the metric is undefined.
        """
        c = self.counts()
        if c.n_pos == 0 or c.n_neg == 0:
            nan = float("nan")
            return dict.fromkeys(("pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO", "pixel_IoUMax"), nan)
        p_tot, n_tot = float(c.n_pos), float(c.n_neg)
        pb = np.diff(c.tp, prepend=0).astype(np.float64)  # per bin, highest first
        nb = np.diff(c.fp, prepend=0).astype(np.float64)
        tp0, fp0 = c.tp - pb, c.fp - nb  # pixels above the bin
        auroc_bound = 0.5 * float(np.sum(pb * nb)) / (p_tot * n_tot)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_bin = (tp0 + pb) / (tp0 + pb + fp0 + nb)
            hi = np.where(pb > 0, (tp0 + pb) / (tp0 + pb + fp0), 0.0)
            lo = np.where(pb > 0, (tp0 + 1) / (tp0 + 1 + fp0 + nb), 0.0)
        ap_bound = float(np.sum(pb / p_tot * np.maximum(hi - p_bin, p_bin - lo)))
        f1_binned = 2.0 * c.tp / (c.tp + c.fp + p_tot)
        f1_upper = 2.0 * (tp0 + pb) / (tp0 + pb + fp0 + p_tot)
        iou_binned = c.tp / (c.fp + p_tot)
        iou_upper = (tp0 + pb) / (fp0 + p_tot)
        bounds = {
            "pixel_AUROC": auroc_bound,
            "pixel_AP": ap_bound,
            "pixel_F1Max": max(0.0, float(f1_upper.max() - f1_binned.max())),
            "pixel_AUPRO": self._aupro_bound(c),
            "pixel_IoUMax": max(0.0, float(iou_upper.max() - iou_binned.max())),
        }
        return bounds

    def _aupro_bound(self, c: RankCounts) -> float:
        if not self.n_regions:
            return float("nan")
        fpr, pro = self._pro_points(c)
        df, dp = np.diff(fpr), np.diff(pro)
        k = int(np.searchsorted(fpr, self.fpr_limit, side="right"))  # first point beyond the limit
        inside = 0.5 * float(np.sum(df[: k - 1] * dp[: k - 1]))
        cross = (self.fpr_limit - fpr[k - 1]) * dp[k - 1] if k < fpr.size else 0.0
        return (inside + float(cross)) / self.fpr_limit

    def roc_curve(self, max_points: int | None = None) -> dict[str, Any]:
        """Binned ROC points ``{"fpr", "tpr", "thresholds", "auc"}`` (thresholds = bin lower edges)."""
        c = self.counts()
        if c.n_pos == 0 or c.n_neg == 0:
            empty = np.zeros(0)
            return {"fpr": empty, "tpr": empty, "thresholds": empty, "auc": float("nan")}
        fpr = np.concatenate(([0.0], c.fp / c.n_neg))
        tpr = np.concatenate(([0.0], c.tp / c.n_pos))
        thr = np.concatenate(([np.inf], c.thresholds))
        keep = thin(fpr.size, max_points)
        return {"fpr": fpr[keep], "tpr": tpr[keep], "thresholds": thr[keep], "auc": auroc_of(c)}

    def pro_curve(self, max_points: int | None = None) -> dict[str, Any]:
        """Binned PRO points up to the FPR limit ``{"fpr", "pro", "aupro"}`` (the limit point interpolated)."""
        c = self.counts()
        aupro = self.compute()["pixel_AUPRO"]
        if not np.isfinite(aupro):
            empty = np.zeros(0)
            return {"fpr": empty, "pro": empty, "aupro": aupro}
        fpr, pro = self._pro_points(c)
        k = int(np.searchsorted(fpr, self.fpr_limit, side="right"))
        if k < fpr.size:
            y = pro[k - 1] + (pro[k] - pro[k - 1]) * (self.fpr_limit - fpr[k - 1]) / (fpr[k] - fpr[k - 1])
            fpr, pro = np.append(fpr[:k], self.fpr_limit), np.append(pro[:k], y)
        keep = thin(fpr.size, max_points)
        return {"fpr": fpr[keep], "pro": pro[keep], "aupro": aupro}

    def __repr__(self) -> str:
        width = "-" if self.exponent is None else f"2^{self.exponent}"
        return (
            f"BinnedPixelMetrics(n_bins={self.n_bins}, bin_width={width}, images={self.n_images}, "
            f"pixels={int(self.neg.sum() + self.pos.sum())}, regions={self.n_regions})"
        )


def _check_shapes(maps_shape: tuple[int, ...], masks_shape: tuple[int, ...]) -> None:
    if tuple(maps_shape) != tuple(masks_shape):
        raise InputError(
            f"anomaly_maps {tuple(maps_shape)} and gt_masks {tuple(masks_shape)} differ in shape. Fix: resize the "
            "maps to the mask size."
        )
