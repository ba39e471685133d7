"""Evaluation in bounded memory: streaming (binned) pixel metrics and maps only for the pictures shown.

:func:`~ssmad.engine.evaluate.collect` keeps every anomaly map and mask of the test set so that the exact pixel
metrics can sort all pixels at once: 5,000 images of 256×256 are 328 M pixels, several GB of maps, masks and
sort buffers. Above :data:`EXACT_MAX_PIXELS` pixels the evaluation streams instead:

* :func:`collect_streaming` runs the network batch by batch and feeds
  :class:`~ssmad.metrics.StreamingEvaluator` (``definition="binned"``: fixed-size histograms per category, error
  bounds ~1e-6 at the default 2^15 bins, reported in ``metrics.json``); it keeps per image only the score, label,
  category, defect type and path;
* the report and the ``images/`` overlays need a few dozen maps: :func:`shown_indices` picks them from the
  scores (the same worst cases and spread as the report), and :func:`maps_of` recomputes just those maps.

Memory is then the model, one batch and the per-category histograms (``3 × 2^15`` numbers), whatever the number
of images; ``benchmarks/bench_memory.py`` measures it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from ..errors import InputError
from .data import make_loader
from .evaluate import Collected, batch_maps, collect

logger = logging.getLogger(__name__)

__all__ = [
    "EXACT_MAX_PIXELS",
    "StreamedResults",
    "collect_streaming",
    "maps_of",
    "needs_streaming",
    "shown_indices",
]

#: Largest evaluation (images × map pixels) done with the exact metrics; larger ones stream (binned metrics).
#: 2^28 pixels: 4,096 maps of 256×256 (MVTec AD's 1,725 and VisA's 2,162 test images stay exact).
EXACT_MAX_PIXELS = 2**28
#: Points per curve drawn in the report.
CURVE_POINTS = 400


@dataclass
class StreamedResults(Collected):
    """A :class:`Collected` without maps or masks (``maps.shape[0] == 0``), with the metrics computed on the way.

    Attributes:
        metrics: The metrics dictionary (``definition="binned"``, error bounds, ``n_images``, ``skipped``).
        curves: Report curves over *all* images: ``image_roc`` (scores and labels), ``pixel_roc``,
            ``pixel_pro`` (from the histograms), ``{plot: {category: curve}}``.
    """

    metrics: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)


def needs_streaming(n_images: int, map_hw: Sequence[int], limit: int = EXACT_MAX_PIXELS) -> bool:
    """Whether ``n_images`` maps of ``map_hw`` pixels exceed the exact-metrics budget ``limit``."""
    return int(n_images) * int(map_hw[0]) * int(map_hw[1]) > int(limit)


def collect_streaming(
    net: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int = 16,
    num_workers: int = 0,
    n_bins: int | None = None,
) -> StreamedResults:
    """Run ``net`` over a labelled data set and compute the binned metrics batch by batch.

    Args:
        net: The trained network (put in eval mode here).
        dataset: Labelled items (those of :class:`~ssmad.data.AnomalyImageDataset`).
        device: Where to run.
        batch_size: Images per forward pass.
        num_workers: Loader workers.
        n_bins: Histogram bins per category (default: :data:`ssmad.metrics.binned.DEFAULT_BINS`).

    Returns:
        Scores, labels and names of every readable image, the metrics and the report curves (no maps).

    Raises:
        InputError: No image could be read.
    """
    from ..metrics import StreamingEvaluator
    from ..metrics.binned import DEFAULT_BINS

    bins = int(n_bins or DEFAULT_BINS)
    images_ev, pixels_ev = StreamingEvaluator(bins), StreamingEvaluator(bins)
    net.eval()
    scores, labels, has_mask = [], [], []
    cats: list[str] = []
    defects: list[str] = []
    paths: list[str] = []
    skipped: list[str] = []
    for item in make_loader(dataset, batch_size, num_workers=num_workers):
        skipped += item["skipped"]
        if "image" not in item:
            continue
        maps = batch_maps(net, item["image"].to(device))
        s = maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)
        y = np.asarray(item["label"]).astype(np.int64)
        ok = np.asarray(item["has_mask"]).astype(bool)
        c = np.asarray(list(item["category"]), dtype=object)
        images_ev.update(s, y, categories=c)
        if ok.any():
            keep = np.flatnonzero(ok)
            masks = item["mask"][:, 0].numpy().astype(np.uint8)
            pixels_ev.update(s[keep], y[keep], maps[keep], masks[keep], c[keep])
        scores.append(s)
        labels.append(y)
        has_mask.append(ok)
        cats += list(item["category"])
        defects += list(item["defect_type"])
        paths += list(item["image_path"])
    if not scores:
        raise InputError(
            "none of the evaluation images could be read"
            + (f" (first error: {skipped[0]})" if skipped else "")
            + ". Fix: check the data folder."
        )
    all_labels = np.concatenate(labels)
    all_has = np.concatenate(has_mask)
    with_pixels = bool(all_labels[all_has].any())
    metrics = (pixels_ev if with_pixels and all_has.all() else images_ev).compute()
    if with_pixels and not all_has.all():
        sub = pixels_ev.compute()
        for key, value in sub.items():
            if key.startswith("pixel_"):
                metrics[key] = value
        for cat, values in sub.get("per_category", {}).items():
            metrics["per_category"].setdefault(cat, {}).update(
                {k: v for k, v in values.items() if k.startswith("pixel_")}
            )
        metrics["error_bounds"] = sub.get("error_bounds", {})
        logger.info("pixel metrics over the %d images with a ground truth (of %d)", int(all_has.sum()), all_has.size)
    metrics["n_images"] = int(all_labels.size)
    metrics["skipped"] = list(skipped)
    empty = np.zeros((0, 0, 0), np.float32)
    results = StreamedResults(
        scores=np.concatenate(scores),
        maps=empty,
        labels=all_labels,
        masks=empty.astype(np.uint8),
        has_mask=all_has,
        categories=cats,
        defect_types=defects,
        paths=paths,
        skipped=skipped,
        metrics=metrics,
    )
    results.curves = _curves(results, pixels_ev if with_pixels else None)
    return results


def _curves(results: Collected, pixels_ev: Any) -> dict[str, dict[str, Any]]:
    """The report's curves over all images (the report itself only sees the few images it shows)."""
    image_roc = {}
    for cat in dict.fromkeys(results.categories):
        sel = [i for i, c in enumerate(results.categories) if c == cat]
        labels = results.labels[sel]
        if 0 < labels.sum() < labels.size:
            image_roc[cat] = {"labels": labels.tolist(), "scores": results.scores[sel].tolist()}
    curves: dict[str, dict[str, Any]] = {"image_roc": image_roc, "pixel_roc": {}, "pixel_pro": {}}
    for cat, acc in pixels_ev.pixels.items() if pixels_ev is not None else ():
        roc = acc.roc_curve(max_points=CURVE_POINTS)
        if math.isfinite(roc["auc"]):
            curves["pixel_roc"][cat] = roc
        pro = acc.pro_curve(max_points=CURVE_POINTS)
        if math.isfinite(pro["aupro"]):
            curves["pixel_pro"][cat] = pro
    return curves


def shown_indices(results: Collected, overlays: Sequence[int], n_worst: int = 3, gallery: int = 4) -> list[int]:
    """Indices of the images whose maps are needed: the overlays and the report's cases of every category.

    Args:
        results: The streamed results (scores, labels, categories).
        overlays: Indices chosen for ``images/`` overlays.
        n_worst: Worst false positives / negatives per category (as :func:`ssmad.viz.report.write_report`).
        gallery: Gallery pictures per category.
    """
    from ..viz.report import select_cases

    @dataclass
    class _Case:
        index: int
        label: int
        score: float

    chosen = set(int(i) for i in overlays)
    for cat in dict.fromkeys(results.categories):
        cases = [
            _Case(i, int(results.labels[i]), float(results.scores[i]))
            for i, c in enumerate(results.categories)
            if c == cat
        ]
        for group in select_cases(cases, n_worst, gallery):
            chosen.update(case.index for case in group)
    return sorted(chosen)


def maps_of(
    net: nn.Module,
    dataset: Dataset,
    results: Collected,
    indices: Sequence[int],
    *,
    device: torch.device,
    batch_size: int = 16,
) -> Collected:
    """Recompute the maps and masks of ``results[indices]`` (a :class:`Collected` of those images, in that order).

    Images are found in ``dataset`` by path (``results`` leaves out unreadable files, so positions differ).
    """
    records = getattr(dataset, "records", None)
    if records is None:
        raise InputError("maps_of needs a data set with records (an AnomalyImageDataset).")
    position = {}
    for j, r in enumerate(records):
        position.setdefault(str(r.image_path), j)
    subset = Subset(dataset, [position[results.paths[i]] for i in indices])
    return collect(net, subset, device=device, batch_size=batch_size)
