"""Metrics room: image and pixel anomaly-detection metrics, exact and streaming, AUPRO, hyperspectral 3-D ROC.

========================  ===================================================================================
module                    job
========================  ===================================================================================
:mod:`.evaluation`        :func:`evaluate` (per category + class mean, ``exact`` | ``ader``) and the batch-wise
                          :class:`StreamingEvaluator` (``binned``); metric names, :data:`METRICS_VERSION`
:mod:`.curves`            one sort → AUROC, AP, F1-max, IoU-max equal to scikit-learn; ROC points
:mod:`.pro`               exact PRO curve / AUPRO over 8-connected regions, integrated to FPR 0.3
:mod:`.ader`              ADer's approximations (21-threshold pixel F1/IoU, 100-threshold AUPRO), spec A.10
:mod:`.binned`            :class:`BinnedPixelMetrics`: constant memory, mergeable, with rigorous error bounds
:mod:`.hsi`               :func:`hsi_metrics`: AUC(D,F) and the 3-D ROC family (spec C.10)
:mod:`.report`            table rows, ``metrics.json`` / ``metrics.csv`` written atomically
========================  ===================================================================================

Metric names are frozen (design.md): ``image_AUROC, image_AP, image_F1Max, pixel_AUROC, pixel_AP,
pixel_F1Max, pixel_AUPRO`` (+ ``pixel_IoUMax``, ``mAD``). Values are fractions in [0, 1]. Names are imported on
first use, so ``import ssmad.metrics`` is cheap (scikit-learn loads only when needed).

Example:
    >>> from ssmad.metrics import evaluate
    >>> r = evaluate([0.1, 0.9, 0.4, 0.8], [0, 1, 0, 1])
    >>> r["image_AUROC"], r["definition"]
    (1.0, 'exact')
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # evaluation
    "evaluate": "evaluation",
    "image_metrics": "evaluation",
    "StreamingEvaluator": "evaluation",
    "METRICS_VERSION": "evaluation",
    "DEFINITIONS": "evaluation",
    "IMAGE_METRICS": "evaluation",
    "PIXEL_METRICS": "evaluation",
    "SEVEN_METRICS": "evaluation",
    "ALL_METRICS": "evaluation",
    # curves
    "auroc": "curves",
    "average_precision": "curves",
    "f1_max": "curves",
    "roc_curve_points": "curves",
    "rank_counts": "curves",
    "RankCounts": "curves",
    # pro
    "aupro": "pro",
    "pro_curve": "pro",
    "label_regions": "pro",
    # ader
    "ader_aupro": "ader",
    "ader_f1_iou_max": "ader",
    # binned
    "BinnedPixelMetrics": "binned",
    # hsi
    "hsi_metrics": "hsi",
    "HSI_METRICS": "hsi",
    # report
    "metric_rows": "report",
    "metrics_json": "report",
    "metrics_csv": "report",
    "write_metrics_json": "report",
    "write_metrics_csv": "report",
    "write_text_atomic": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmad.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
