"""Visual outputs: heat-map overlays, hyperspectral panels, ROC/PRO plots, metrics files and the HTML report.

=====================  ==================================================================================
module                 job
=====================  ==================================================================================
:mod:`.overlays`        "image | ground truth | anomaly map | predicted mask" panels (:func:`overlay`,
                       :func:`save_overlay`), map normalisation (:func:`normalize_map`, :func:`global_range`)
:mod:`.hsi`            "image | ground truth | score map | overlay" for hyperspectral scenes (:func:`hsi_panel`)
:mod:`.curves`         ROC and PRO curve plots to PNG (:func:`plot_roc`, :func:`plot_pro`)
:mod:`.tables`         the metrics table: columns, rows, "×100 with one decimal" formatting
:mod:`.report`         ``metrics.json`` / ``metrics.csv`` (:func:`write_metrics_files`) and the self-contained
                       ``report.html`` (:func:`write_report`)
=====================  ==================================================================================

Rendering uses numpy, Pillow and matplotlib's Agg canvas on :class:`matplotlib.figure.Figure` objects — never
:mod:`matplotlib.pyplot` — so it changes no global matplotlib state and works without a display. Every file is
written atomically, and an existing file is never replaced unless ``overwrite=True``
(:class:`OutputExistsError` otherwise).

Names are imported on first use, so ``import ssmad.viz`` is cheap.

Example:
    >>> from ssmad.viz import save_overlay, write_report  # doctest: +SKIP
    >>> save_overlay("images/000.png", "bottle/test/broken_large/000.png", amap, gt_mask=mask)  # doctest: +SKIP
    >>> write_report("results/run", metrics, predictions)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "OutputExistsError": "_io",
    "write_bytes_atomic": "_io",
    "write_text_atomic": "_io",
    "overlay": "overlays",
    "save_overlay": "overlays",
    "normalize_map": "overlays",
    "global_range": "overlays",
    "colorize": "overlays",
    "hsi_panel": "hsi",
    "save_hsi_panel": "hsi",
    "plot_roc": "curves",
    "plot_pro": "curves",
    "roc_points": "curves",
    "area_under": "curves",
    "format_percent": "tables",
    "metric_columns": "tables",
    "write_report": "report",
    "write_metrics_files": "report",
    "select_cases": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmad.viz' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
