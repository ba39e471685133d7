"""Metric tables and files: per-category rows, ``metrics.json`` and ``metrics.csv``, written atomically.

A result of :func:`~.evaluation.evaluate` (or :meth:`~.evaluation.StreamingEvaluator.compute`, or a dictionary
of :func:`~.hsi.hsi_metrics` per scene) becomes

* rows: one per category in first-seen order, then a ``"mean"`` row (the class mean), each
  ``{"category": name, metric: value, ...}`` with the metric columns in table order;
* ``metrics.json``: the whole result (without plot ``curves``), strict JSON — NaN/Inf are written as ``null``,
  numpy numbers and arrays as plain numbers and lists, keys in the order produced;
* ``metrics.csv``: the rows, NaN as ``nan``, full float precision (``repr``).

Both files are first written to a temporary file in the destination folder and then given their name, so a
crash never leaves a half-written file; an existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .evaluation import ALL_METRICS
from .hsi import HSI_METRICS

#: Column order of tables: the image/pixel metrics, then the hyperspectral keys.
COLUMN_ORDER = (*ALL_METRICS, *HSI_METRICS)


def metric_rows(result: Mapping[str, Any], mean_row: bool = True) -> list[dict[str, Any]]:
    """Table rows, one per category (+ the class mean).

    Args:
        result: An :func:`~.evaluation.evaluate` result (with ``"per_category"``), or a plain mapping
            ``{category: {metric: value}}`` (e.g. hyperspectral scenes), whose mean row is then the NaN-ignoring
            mean of each column.
        mean_row: Append the ``"mean"`` row.

    Returns:
        ``[{"category": name, metric: value, ...}, ...]``.
    """
    if "per_category" in result:
        per_category: Mapping[str, Mapping[str, Any]] = result["per_category"]
        means = {k: result[k] for k in COLUMN_ORDER if k in result}
    else:
        per_category = result
        means = {}
    if not per_category:
        raise InputError("the result holds no category. Fix: evaluate at least one image.")
    columns = metric_columns(per_category)
    rows = [{"category": str(cat), **{k: _num(values.get(k)) for k in columns}} for cat, values in per_category.items()]
    if mean_row:
        if not means:
            from .evaluation import nanmean

            means = {k: nanmean([_num(v.get(k)) for v in per_category.values()]) for k in columns}
        rows.append({"category": "mean", **{k: _num(means.get(k)) for k in columns}})
    return rows


def metric_columns(per_category: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Metric names present in any category, known names in table order first, others after, sorted."""
    present: set[str] = set()
    for values in per_category.values():
        present.update(k for k, v in values.items() if _is_number(v))
    return [k for k in COLUMN_ORDER if k in present] + sorted(present.difference(COLUMN_ORDER))


def to_jsonable(value: Any) -> Any:
    """Convert a result to strict-JSON values: numpy → Python, NaN/Inf → None, tuples → lists."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def metrics_json(result: Mapping[str, Any]) -> str:
    """The ``metrics.json`` text of a result (plot curves left out)."""
    payload = {k: v for k, v in result.items() if k != "curves"}
    return json.dumps(to_jsonable(payload), indent=2, allow_nan=False) + "\n"


def metrics_csv(result: Mapping[str, Any]) -> str:
    """The ``metrics.csv`` text of a result: a header, one row per category and the mean row."""
    rows = metric_rows(result)
    columns = list(rows[0])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row["category"], *(_fmt(row[c]) for c in columns[1:])])
    return buf.getvalue()


def write_metrics_json(result: Mapping[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """Write ``metrics.json`` atomically; an existing file is kept unless ``overwrite``.

    Raises:
        InputError: The file exists and ``overwrite`` is false.
    """
    return write_text_atomic(path, metrics_json(result), overwrite=overwrite)


def write_metrics_csv(result: Mapping[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """Write ``metrics.csv`` atomically; an existing file is kept unless ``overwrite``.

    Raises:
        InputError: The file exists and ``overwrite`` is false.
    """
    return write_text_atomic(path, metrics_csv(result), overwrite=overwrite)


def write_text_atomic(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write UTF-8 text through a temporary file in the destination folder (created if missing).

    The final name is given by a hard link when ``overwrite`` is false — it fails, atomically, if the name
    exists — or by :func:`os.replace` otherwise (and on file systems without hard links, after a check).

    Raises:
        InputError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise _exists(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as err:
                raise _exists(path) from err
            except OSError:  # no hard links on this file system
                if path.exists():
                    raise _exists(path) from None
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _exists(path: Path) -> InputError:
    return InputError(
        f"the output file {path} exists already and was left unchanged. Fix: choose another output folder, "
        "delete or rename the file, or ask to overwrite it (overwrite=True / --overwrite)."
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else repr(float(v))
