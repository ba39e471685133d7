"""ROC and PRO curve plots, one line per category, rendered to PNG with matplotlib's Agg canvas.

The plots use :class:`matplotlib.figure.Figure` with a :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`
of their own, never :mod:`matplotlib.pyplot`: no global figure registry, no backend switch, nothing that could
disturb an interactive session (Jupyter, an IDE) of the caller, and safe in worker threads.

Curve inputs are plain arrays, so any producer can feed them:

* ROC, per category: ``{"fpr": ..., "tpr": ...}`` (optionally ``"auc"``), a ``(fpr, tpr)`` pair, or
  ``{"labels": ..., "scores": ...}`` from which the points are computed with :func:`sklearn.metrics.roc_curve`.
* PRO, per category: ``{"fpr": ..., "pro": ...}`` (optionally ``"aupro"``) or a ``(fpr, pro)`` pair — the
  per-region overlap as a function of the pixel false-positive rate, as computed by :mod:`ssmad.metrics`.

The legend shows each curve's area: the given ``auc``/``aupro`` if any, otherwise the trapezoidal area of the
points (for PRO: up to ``fpr_limit``, with the curve linearly interpolated at the limit, divided by the limit —
the ``exact`` AUPRO definition).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import InputError
from ._io import write_bytes_atomic
from .overlays import _to_numpy

logger = logging.getLogger(__name__)


class Curve(NamedTuple):
    """Points of one curve, ``x`` increasing, and its area as shown in the legend."""

    x: np.ndarray
    y: np.ndarray
    area: float


def area_under(x: Any, y: Any, x_limit: float | None = None) -> float:
    """Trapezoidal area under ``y(x)``; with ``x_limit``, only up to it (interpolated there) and divided by it.

    Args:
        x: ``(n,)`` non-decreasing abscissae.
        y: ``(n,)`` values.
        x_limit: Integrate over ``[x[0], x_limit]`` and normalise by ``x_limit`` (AUPRO at FPR 0.3).

    Returns:
        The area (NaN for fewer than two points).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x_limit is not None:
        above = np.flatnonzero(x > x_limit)
        if above.size and above[0] > 0:  # cut at the limit, interpolating on the segment that crosses it
            i = int(above[0])
            t = (x_limit - x[i - 1]) / (x[i] - x[i - 1])
            x = np.append(x[:i], x_limit)
            y = np.append(y[:i], y[i - 1] + t * (y[i] - y[i - 1]))
        elif above.size:
            x, y = x[:0], y[:0]
    if len(x) < 2:
        return float("nan")
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))
    return area / float(x_limit) if x_limit is not None else area


def roc_points(labels: Any, scores: Any) -> Curve:
    """ROC points and area of one set of scores, via :func:`sklearn.metrics.roc_curve`.

    Args:
        labels: ``(n,)`` 0/1 (1 = anomalous).
        scores: ``(n,)`` higher = more anomalous.

    Raises:
        InputError: Lengths differ, NaN scores, or only one class present (the ROC is undefined).
    """
    from sklearn.metrics import roc_curve

    y = _to_numpy(labels).reshape(-1)
    s = _to_numpy(scores).astype(np.float64).reshape(-1)
    if y.shape != s.shape:
        raise InputError(f"labels ({y.size}) and scores ({s.size}) differ in length. Fix: pass one score per label.")
    if not np.isfinite(s).all():
        raise InputError("the scores hold NaN/Inf values. Fix: check the model output.")
    if len(np.unique(y)) < 2:
        raise InputError("the ROC needs both normal (0) and anomalous (1) samples; only one class is present.")
    fpr, tpr, _ = roc_curve(y, s)
    return Curve(fpr, tpr, area_under(fpr, tpr))


def _pair(curve: Any, xkey: str, ykey: str, what: str) -> tuple[np.ndarray, np.ndarray, float | None]:
    area = None
    if isinstance(curve, Mapping):
        if xkey not in curve or ykey not in curve:
            raise InputError(f"a {what} curve needs the keys {xkey!r} and {ykey!r}; got {sorted(curve)}.")
        x, y = curve[xkey], curve[ykey]
        area = next((float(curve[k]) for k in ("auc", "aupro", "area") if curve.get(k) is not None), None)
    else:
        try:
            x, y = curve
        except (TypeError, ValueError) as err:
            raise InputError(f"a {what} curve must be a mapping or an ({xkey}, {ykey}) pair of arrays.") from err
    x = _to_numpy(x).astype(np.float64).reshape(-1)
    y = _to_numpy(y).astype(np.float64).reshape(-1)
    if x.shape != y.shape or x.size == 0:
        raise InputError(f"the {what} curve's {xkey} ({x.size}) and {ykey} ({y.size}) must be non-empty and equal.")
    if x.size > 1 and x[0] > x[-1]:  # given from high to low thresholds' other end: keep ties in curve order
        x, y = x[::-1], y[::-1]
    order = np.argsort(x, kind="stable")
    return x[order], y[order], area


def as_roc(curve: Any) -> Curve:
    """Normalise one ROC input (see the module docstring) to a :class:`Curve`."""
    if isinstance(curve, Mapping) and "labels" in curve and "scores" in curve:
        return roc_points(curve["labels"], curve["scores"])
    x, y, area = _pair(curve, "fpr", "tpr", "ROC")
    return Curve(x, y, area_under(x, y) if area is None else area)


def as_pro(curve: Any, fpr_limit: float = 0.3) -> Curve:
    """Normalise one PRO input (see the module docstring) to a :class:`Curve` whose area is the AUPRO."""
    x, y, area = _pair(curve, "fpr", "pro", "PRO")
    return Curve(x, y, area_under(x, y, fpr_limit) if area is None else area)


# ---------------------------------------------------------------------------------------------------- plotting
def _figure(figsize: tuple[float, float], dpi: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _plot(
    curves: list[tuple[str, Curve]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    area_name: str,
    xmax: float,
    diagonal: bool,
    figsize: tuple[float, float],
    dpi: int,
) -> bytes:
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i}" if len(curves) <= 10 else None for i in range(len(curves))]
    if len(curves) > 10:
        from matplotlib import colormaps

        cmap = colormaps["tab20"]
        colors = [cmap(i % 20) for i in range(len(curves))]
    for (name, c), color in zip(curves, colors, strict=True):
        area = "–" if not np.isfinite(c.area) else f"{100 * c.area:.1f}"
        ax.plot(c.x, c.y, color=color, linewidth=1.5, label=f"{name} ({area_name} {area})", drawstyle="default")
    if diagonal:
        ax.plot([0, xmax], [0, xmax], color="0.6", linestyle="--", linewidth=1)
    if not curves:
        ax.text(0.5, 0.5, "no curve to show", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, linewidth=0.5, alpha=0.5)
    if curves:
        ax.legend(loc="lower right", fontsize="small" if len(curves) <= 8 else "x-small")
    fig.tight_layout()
    return _png(fig, dpi)


def _collect(curves_by_category: Mapping[str, Any], convert: Any, what: str) -> list[tuple[str, Curve]]:
    if not isinstance(curves_by_category, Mapping) or not curves_by_category:
        raise InputError(f"plot_{what} needs a non-empty mapping category → curve; got {type(curves_by_category)}.")
    out = []
    for name, curve in curves_by_category.items():
        try:
            out.append((str(name), convert(curve)))
        except InputError as err:
            logger.info("no %s curve for %s: %s", what.upper(), name, err)
    return out


def _finish(png: bytes, path: str | Path | None, overwrite: bool) -> bytes:
    if path is not None:
        write_bytes_atomic(path, png, overwrite=overwrite)
    return png


def plot_roc(
    curves_by_category: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    title: str = "ROC",
    overwrite: bool = False,
    figsize: tuple[float, float] = (5.0, 5.0),
    dpi: int = 100,
) -> bytes:
    """Plot ROC curves, one line per category (categories with one class only are left out and logged).

    Args:
        curves_by_category: ``{category: roc}``, each as described in the module docstring.
        path: Also write the PNG there (atomically; an existing file is kept unless ``overwrite``).
        title: Plot title.
        overwrite: Replace an existing ``path``.
        figsize: Figure size in inches.
        dpi: Pixels per inch.

    Returns:
        The PNG file content (``figsize * dpi`` pixels).

    Raises:
        InputError: An empty mapping or malformed curves.
    """
    curves = _collect(curves_by_category, as_roc, "roc")
    png = _plot(
        curves,
        title=title,
        xlabel="false positive rate",
        ylabel="true positive rate",
        area_name="AUROC",
        xmax=1.0,
        diagonal=True,
        figsize=figsize,
        dpi=dpi,
    )
    return _finish(png, path, overwrite)


def plot_pro(
    curves_by_category: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    fpr_limit: float = 0.3,
    title: str = "PRO",
    overwrite: bool = False,
    figsize: tuple[float, float] = (5.0, 5.0),
    dpi: int = 100,
) -> bytes:
    """Plot per-region-overlap curves up to ``fpr_limit``, one line per category.

    Args:
        curves_by_category: ``{category: pro}``, each ``{"fpr", "pro"}`` (+ optional ``"aupro"``) or a pair.
        path: Also write the PNG there (atomically; an existing file is kept unless ``overwrite``).
        fpr_limit: Right end of the x axis and integration limit of the legend's AUPRO.
        title: Plot title.
        overwrite: Replace an existing ``path``.
        figsize: Figure size in inches.
        dpi: Pixels per inch.

    Returns:
        The PNG file content.

    Raises:
        InputError: An empty mapping, malformed curves or a limit outside (0, 1].
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise InputError(f"fpr_limit must be within (0, 1]; got {fpr_limit}.")
    curves = _collect(curves_by_category, lambda c: as_pro(c, fpr_limit), "pro")
    png = _plot(
        curves,
        title=title,
        xlabel="pixel false positive rate",
        ylabel="per-region overlap",
        area_name="AUPRO",
        xmax=fpr_limit,
        diagonal=False,
        figsize=figsize,
        dpi=dpi,
    )
    return _finish(png, path, overwrite)
