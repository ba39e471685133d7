"""Inference over data sets: anomaly maps, image scores, metrics and label-free thresholds.

* :func:`batch_maps` runs the network on a batch and returns its anomaly maps ``(B, H, W)`` at the model's input
  resolution, as ``net.anomaly_map`` computes them (spec A.8: ``1 − cos`` per scale, upsampled, summed, Gaussian
  σ = 4) — the image score is the maximum of each map;
* :func:`collect` does that over a labelled data set and keeps what the metrics and the report need (scores,
  maps, labels, masks, categories, paths; unreadable files are skipped and listed);
* :func:`collect_sharded` is :func:`collect` over several processes: each scores its own contiguous range of
  whole batches (no padding, no duplicate) and rank 0 gets the concatenation in data-set order — the arrays one
  process would have produced, so the metrics computed from them are the same;
* :func:`compute_metrics` hands the collection to :func:`ssmad.metrics.evaluate` (pixel metrics only over images
  that have a ground truth);
* :func:`quantile_thresholds` and :func:`f1_thresholds` set the decision thresholds without / with labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .data import make_loader

logger = logging.getLogger(__name__)

__all__ = [
    "Collected",
    "batch_maps",
    "collect",
    "collect_sharded",
    "compute_metrics",
    "f1_thresholds",
    "merge_collected",
    "quantile_thresholds",
]


def batch_maps(net: nn.Module, images: Tensor) -> np.ndarray:
    """Anomaly maps of a batch at the input resolution.

    Args:
        net: The network; ``net.anomaly_map(enc, dec, out_size)`` gives the final maps (smoothed, spec A.8) as
            ``(B, H, W)`` or ``(B, 1, H, W)``.
        images: Normalised images ``(B, 3, H, W)`` on the network's device.

    Returns:
        ``(B, H, W)`` float32 maps, higher = more anomalous.
    """
    with torch.no_grad():
        enc, dec = net(images)
        maps = net.anomaly_map(enc, dec, tuple(images.shape[-2:]))
    if maps.dim() == 4:
        maps = maps[:, 0]
    return maps.detach().float().cpu().numpy()


@dataclass
class Collected:
    """Everything an evaluation produced, in data-set order (skipped files excluded).

    Attributes:
        scores: ``(n,)`` image scores (maximum of each map).
        maps: ``(n, H, W)`` float32 anomaly maps at the model's resolution.
        labels: ``(n,)`` 0/1 image labels.
        masks: ``(n, H, W)`` uint8 ground truth (zeros for normal images).
        has_mask: ``(n,)`` whether the image has a pixel ground truth (normal images: yes).
        categories: Category of each image.
        defect_types: Defect type of each image (``good`` for normal ones).
        paths: Image paths.
        skipped: Messages of the files that could not be read.
    """

    scores: np.ndarray
    maps: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    has_mask: np.ndarray
    categories: list[str]
    defect_types: list[str]
    paths: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def collect(
    net: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int = 16,
    num_workers: int = 0,
    keep_maps: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    allow_empty: bool = False,
) -> Collected:
    """Run ``net`` over a labelled data set (items of :class:`~ssmad.data.AnomalyImageDataset`).

    Args:
        net: The trained network (put in eval mode here).
        dataset: Labelled items (``image``, ``mask``, ``has_mask``, ``label``, ``category``, ``defect_type``,
            ``image_path``).
        device: Where to run.
        batch_size: Images per forward pass.
        num_workers: Loader workers.
        keep_maps: Keep the maps and masks (pixel metrics, report); ``False`` keeps scores only (thresholds).
        on_batch: ``on_batch(done, total)`` after each batch.
        allow_empty: Return an empty collection instead of raising when no image could be read (or there is
            none), e.g. for one process's share.

    Returns:
        The :class:`Collected` results.
    """
    net.eval()
    loader = make_loader(dataset, batch_size, num_workers=num_workers)
    scores, maps, labels, masks, has_mask = [], [], [], [], []
    cats: list[str] = []
    defects: list[str] = []
    paths: list[str] = []
    skipped: list[str] = []
    total = len(dataset)  # type: ignore[arg-type]
    done = 0
    for item in loader:
        skipped += item["skipped"]
        done += len(item["skipped"])
        if "image" not in item:
            continue
        m = batch_maps(net, item["image"].to(device))
        scores.append(m.reshape(m.shape[0], -1).max(axis=1))
        labels.append(np.asarray(item["label"]).astype(np.int64))
        has_mask.append(np.asarray(item["has_mask"]).astype(bool))
        if keep_maps:
            maps.append(m)
            masks.append(item["mask"][:, 0].numpy().astype(np.uint8))
        cats += list(item["category"])
        defects += list(item["defect_type"])
        paths += list(item["image_path"])
        done += m.shape[0]
        if on_batch is not None:
            on_batch(done, total)
    if not scores and allow_empty:
        return _empty(skipped)
    if not scores:
        from ..errors import InputError

        raise InputError(
            "none of the evaluation images could be read"
            + (f" (first error: {skipped[0]})" if skipped else "")
            + ". Fix: check the data folder."
        )
    empty = np.zeros((0, 0, 0), np.float32)
    return Collected(
        scores=np.concatenate(scores).astype(np.float64),
        maps=np.concatenate(maps) if keep_maps else empty,
        labels=np.concatenate(labels),
        masks=np.concatenate(masks) if keep_maps else empty.astype(np.uint8),
        has_mask=np.concatenate(has_mask),
        categories=cats,
        defect_types=defects,
        paths=paths,
        skipped=skipped,
    )


def _empty(skipped: list[str]) -> Collected:
    return Collected(
        scores=np.zeros(0, np.float64),
        maps=np.zeros((0, 0, 0), np.float32),
        labels=np.zeros(0, np.int64),
        masks=np.zeros((0, 0, 0), np.uint8),
        has_mask=np.zeros(0, bool),
        categories=[],
        defect_types=[],
        paths=[],
        skipped=list(skipped),
    )


def merge_collected(parts: list[Collected]) -> Collected:
    """Concatenate collections in the given order (empty parts contribute only their skipped files).

    Raises:
        InputError: No part holds an image.
    """
    full = [p for p in parts if len(p)]
    skipped = [msg for p in parts for msg in p.skipped]
    if not full:
        from ..errors import InputError

        raise InputError(
            "none of the evaluation images could be read"
            + (f" (first error: {skipped[0]})" if skipped else "")
            + ". Fix: check the data folder."
        )
    keep_maps = all(p.maps.shape[0] == len(p) for p in full)
    empty = np.zeros((0, 0, 0), np.float32)
    return Collected(
        scores=np.concatenate([p.scores for p in full]),
        maps=np.concatenate([p.maps for p in full]) if keep_maps else empty,
        labels=np.concatenate([p.labels for p in full]),
        masks=np.concatenate([p.masks for p in full]) if keep_maps else empty.astype(np.uint8),
        has_mask=np.concatenate([p.has_mask for p in full]),
        categories=[c for p in full for c in p.categories],
        defect_types=[d for p in full for d in p.defect_types],
        paths=[q for p in full for q in p.paths],
        skipped=skipped,
    )


def collect_sharded(
    net: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int = 16,
    num_workers: int = 0,
    keep_maps: bool = True,
) -> Collected | None:
    """:func:`collect` split over the processes of the active process group (a collective call).

    Each process scores :func:`~ssmad.engine.distributed.shard_range` of the data set (whole batches of
    ``batch_size``, so every image is computed in the same batch as in one process); the parts are gathered to
    rank 0 in rank order, which is data-set order. Without a process group this is :func:`collect`.

    Returns:
        The complete :class:`Collected` on rank 0 (and in a single process), ``None`` on the other ranks.

    Raises:
        InputError: No image could be read (on every process).
    """
    from torch.utils.data import Subset

    from . import distributed

    if not distributed.is_active():
        return collect(net, dataset, device=device, batch_size=batch_size, num_workers=num_workers, keep_maps=keep_maps)
    share = distributed.shard_range(len(dataset), batch_size)  # type: ignore[arg-type]
    local = collect(
        net,
        Subset(dataset, list(share)),
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        keep_maps=keep_maps,
        allow_empty=True,
    )
    parts = distributed.gather_to_main(local)
    return distributed.run_on_main(lambda: merge_collected(parts or []), share=False)


def compute_metrics(results: Collected, definition: str = "exact") -> dict[str, Any]:
    """The design's metrics (image and, where ground truth exists, pixel) via :func:`ssmad.metrics.evaluate`.

    Pixel metrics use only the images with a pixel ground truth (anomalous images without a mask are left out of
    them, but count for the image metrics).

    Returns:
        ``ssmad.metrics.evaluate``'s dictionary (class means at the top level, ``per_category`` below), plus
        ``n_images`` and ``skipped``.
    """
    from ..metrics import evaluate

    labels = results.labels
    kwargs: dict[str, Any] = {"categories": results.categories, "definition": definition}
    pixel_ok = results.maps.ndim == 3 and results.maps.shape[0] == len(results) and bool(results.has_mask.all())
    if pixel_ok and labels.any():
        kwargs.update(anomaly_maps=results.maps, gt_masks=results.masks)
    metrics = evaluate(results.scores, labels, **kwargs)
    if not pixel_ok and results.maps.ndim == 3 and results.has_mask.any() and labels.any():
        keep = np.flatnonzero(results.has_mask)
        sub = evaluate(
            results.scores[keep],
            labels[keep],
            anomaly_maps=results.maps[keep],
            gt_masks=results.masks[keep],
            categories=[results.categories[i] for i in keep],
            definition=definition,
        )
        for key, value in sub.items():
            if key.startswith("pixel_"):
                metrics[key] = value
        for cat, values in sub.get("per_category", {}).items():
            metrics.setdefault("per_category", {}).setdefault(cat, {}).update(
                {k: v for k, v in values.items() if k.startswith("pixel_")}
            )
        logger.info("pixel metrics over the %d images with a ground truth (of %d)", keep.size, len(results))
    metrics["n_images"] = len(results)
    metrics["skipped"] = list(results.skipped)
    return metrics


def quantile_thresholds(
    scores: np.ndarray, maps: np.ndarray | None, quantile: float, pixel_quantile: float | None
) -> tuple[float, float]:
    """Label-free thresholds from normal images.

    Args:
        scores: ``(n,)`` image scores of normal images.
        maps: ``(n, H, W)`` their maps (needed only for ``pixel_quantile``).
        quantile: Quantile of the image scores → image threshold.
        pixel_quantile: Quantile of all their pixels → pixel threshold; ``None``: the image threshold.

    Returns:
        ``(image_threshold, pixel_threshold)``.
    """
    image = float(np.quantile(np.asarray(scores, dtype=np.float64), quantile))
    if pixel_quantile is None or maps is None or maps.size == 0:
        return image, image
    return image, float(np.quantile(np.asarray(maps, dtype=np.float64).ravel(), pixel_quantile))


def _best_f1_threshold(values: np.ndarray, targets: np.ndarray) -> float:
    """The threshold ``t`` maximising F1 of ``values >= t`` (exact, over every distinct value)."""
    order = np.argsort(-values, kind="stable")
    v, y = values[order], targets[order].astype(np.int64)
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    last = np.r_[np.flatnonzero(np.diff(v) != 0), v.size - 1]  # last index of each distinct value
    tp, fp = tp[last], fp[last]
    pos = max(int(y.sum()), 1)
    f1 = 2 * tp / (tp + fp + pos)
    return float(v[last[int(np.argmax(f1))]])


def f1_thresholds(results: Collected, max_pixels: int = 5_000_000, seed: int = 0) -> tuple[float, float]:
    """F1-optimal image and pixel thresholds on a labelled validation collection.

    Pixels are subsampled uniformly to at most ``max_pixels`` (seeded) to bound time and memory. Without any
    anomalous image (or pixel) the corresponding threshold is the maximum normal value.
    """
    scores, labels = results.scores, results.labels
    image = _best_f1_threshold(scores, labels) if labels.any() else float(scores.max())
    if results.maps.ndim != 3 or results.maps.shape[0] == 0:
        return image, image
    keep = np.flatnonzero(results.has_mask)
    values = results.maps[keep].ravel()
    targets = results.masks[keep].ravel()
    if values.size > max_pixels:
        idx = np.random.default_rng(seed).choice(values.size, size=max_pixels, replace=False)
        values, targets = values[idx], targets[idx]
    pixel = _best_f1_threshold(values.astype(np.float64), targets) if targets.any() else float(values.max())
    return image, pixel
