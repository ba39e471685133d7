"""The metrics table shared by ``metrics.csv`` and the HTML report: which columns, which rows, how shown.

The input is the dictionary returned by ``ssmad.metrics.evaluate``: the class means under the frozen metric
names (design.md), the per-category values under ``"per_category"``, plus ``"definition"`` and
``"metrics_version"``. Rows are the categories in the order given, then one ``mean`` row holding the top-level
values. Columns are the frozen names in their fixed order (image, pixel, ``mAD``, then the hyperspectral
``AUC_*`` family) that occur anywhere, followed by any other numeric per-category key in first-seen order.

All metrics are fractions in [0, 1]; the report shows them ×100 with one decimal (``98.7``) and an undefined
value (NaN, ``None``, missing — e.g. pixel metrics of a category without masks) as "–".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError

#: Image and pixel metric names, in table order.
IMAGE_METRICS: tuple[str, ...] = (
    "image_AUROC",
    "image_AP",
    "image_F1Max",
    "pixel_AUROC",
    "pixel_AP",
    "pixel_F1Max",
    "pixel_AUPRO",
    "pixel_IoUMax",
    "mAD",
)
#: Hyperspectral (3-D ROC family) metric names, in table order.
HSI_METRICS: tuple[str, ...] = (
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
KNOWN_METRICS: tuple[str, ...] = IMAGE_METRICS + HSI_METRICS
#: Name of the class-mean row.
MEAN_ROW = "mean"
#: What an undefined value is shown as.
MISSING = "–"


def _plain(value: Any) -> Any:
    """Unwrap a 0-d numpy array, numpy scalar or one-element tensor into a Python scalar."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _is_number(value: Any) -> bool:
    value = _plain(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_float(value: Any) -> float:
    """The value as a float; NaN for ``None``, non-numbers and NaN itself."""
    value = _plain(value)
    return float(value) if _is_number(value) else math.nan


def per_category(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The ``"per_category"`` part as ``{category: {metric: value}}`` (empty when absent).

    Raises:
        InputError: ``metrics`` is not a mapping or ``per_category`` is malformed.
    """
    if not isinstance(metrics, Mapping):
        raise InputError(f"metrics must be a dict as returned by ssmad.metrics.evaluate; got {type(metrics).__name__}.")
    cats = metrics.get("per_category") or {}
    if not isinstance(cats, Mapping) or not all(isinstance(v, Mapping) for v in cats.values()):
        raise InputError('metrics["per_category"] must map each category name to a dict {metric: value}.')
    return {str(k): v for k, v in cats.items()}


def metric_columns(metrics: Mapping[str, Any]) -> list[str]:
    """The table's metric columns (see the module docstring)."""
    cats = per_category(metrics)
    present = set(k for k in metrics if k in KNOWN_METRICS)
    extra: list[str] = []
    for values in cats.values():
        for key, value in values.items():
            if key in KNOWN_METRICS:
                present.add(key)
            elif key not in extra and (_is_number(value) or value is None):
                extra.append(key)
    return [k for k in KNOWN_METRICS if k in present] + extra


def metric_rows(metrics: Mapping[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """``[(row name, {column: float or NaN})]``: one row per category, then the ``mean`` row."""
    columns = metric_columns(metrics)
    rows = [(name, {c: as_float(values.get(c)) for c in columns}) for name, values in per_category(metrics).items()]
    rows.append((MEAN_ROW, {c: as_float(metrics.get(c)) for c in columns}))
    return rows


def format_percent(value: Any) -> str:
    """A metric as shown in the report: ×100 with one decimal, or "–" when undefined."""
    v = as_float(value)
    return MISSING if not math.isfinite(v) else f"{100.0 * v:.1f}"


def column_title(name: str) -> str:
    """A column heading: ``image_AUROC`` → ``image AUROC``."""
    return name.replace("_", " ")
