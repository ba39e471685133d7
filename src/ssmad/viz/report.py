"""Run reports: ``metrics.json`` / ``metrics.csv`` and one self-contained ``report.html``.

The HTML report answers the questions people ask after an evaluation: how good is it per category (the
metrics table, ×100, with the class mean), how do the curves look, and where does it fail — the **worst false
positives** (the highest-scoring normal images of each category) and the **worst false negatives** (the
lowest-scoring anomalous images), each shown as an overlay "image | ground truth | anomaly map | predicted
mask", plus a small gallery spread over the score range. It is one file: CSS inline, every picture embedded as a
base64 PNG, no script and no external link, so it opens offline anywhere.

Its size is bounded: overlays are thumbnails ``thumb_size`` pixels high (PNG, palette-quantised when
``compact``), at most ``max_images`` of them (worst cases first, then the gallery), and the number left out is
stated in the page.

Heat colours use one range per category by default (``normalization="category"``: the minimum and maximum of
all of that category's maps), so the thumbnails of one category are comparable; ``"global"`` uses one range
for all, ``"image"`` stretches each map, and a ``(lo, hi)`` pair fixes it.

Prediction records can be dicts or objects (e.g. the results of ``Detector.predict_maps``) with these fields
(aliases in brackets): ``image_path`` [``path``] and/or ``image`` (an array), ``category`` (default ``"all"``),
``label`` [``gt_label``] (0 normal, 1 anomalous, ``None`` unknown), ``score`` [``pred_score``],
``anomaly_map`` (an array or a ``.npy`` file) or ``overlay`` (a ready PNG file or RGB array), ``gt_mask``
[``mask_path``] and ``pred_mask`` (arrays or files, optional).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__
from ..errors import InputError
from . import _html
from ._io import check_writable, png_bytes, write_text_atomic
from .curves import plot_pro, plot_roc
from .overlays import _check_range, as_map, as_mask, as_rgb, colorize, global_range, overlay
from .tables import as_float, metric_columns, metric_rows

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"


# ---------------------------------------------------------------------------------------------- metrics files
def _jsonable(value: Any) -> Any:
    """A JSON-safe copy: numpy/torch scalars and arrays to Python, NaN/Inf to ``None``, paths to strings."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def metrics_csv_text(metrics: Mapping[str, Any]) -> str:
    """``metrics.csv`` content: ``category`` + metric columns; one row per category, then ``mean``.

    Values are written at full precision (Python's shortest round-trip form); undefined values are empty.
    """
    columns = metric_columns(metrics)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["category", *columns])
    for name, values in metric_rows(metrics):
        writer.writerow([name, *(repr(values[c]) if math.isfinite(values[c]) else "" for c in columns)])
    return buf.getvalue()


def write_metrics_files(out_dir: str | Path, metrics: Mapping[str, Any], overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``metrics.json`` (the whole dict, NaN as ``null``) and ``metrics.csv`` into ``out_dir``, atomically.

    Args:
        out_dir: Folder (created if needed).
        metrics: The dict returned by ``ssmad.metrics.evaluate``.
        overwrite: Replace existing files; otherwise neither file is written when either exists.

    Returns:
        ``(json_path, csv_path)``.

    Raises:
        OutputExistsError: A file exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    json_path = check_writable(out_dir / METRICS_JSON, overwrite)
    csv_path = check_writable(out_dir / METRICS_CSV, overwrite)
    text = json.dumps(_jsonable(metrics), indent=2, allow_nan=False) + "\n"
    csv_text = metrics_csv_text(metrics)
    write_text_atomic(json_path, text, overwrite=overwrite)
    write_text_atomic(csv_path, csv_text, overwrite=overwrite)
    return json_path, csv_path


# ---------------------------------------------------------------------------------------------- predictions
@dataclass
class _Item:
    """One prediction record, normalised."""

    index: int
    name: str
    category: str
    label: int | None
    score: float
    image: Any
    anomaly_map: Any
    overlay: Any
    gt_mask: Any
    pred_mask: Any


def _field(record: Any, *names: str) -> Any:
    for name in names:
        value = record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)
        if value is not None:
            return value
    return None


def _short_name(path: Any, index: int) -> str:
    if path is None:
        return f"#{index}"
    return "/".join(Path(str(path)).parts[-3:])


def _items(predictions: Sequence[Any]) -> list[_Item]:
    items = []
    for i, rec in enumerate(predictions):
        path = _field(rec, "image_path", "path")
        score = as_float(_field(rec, "score", "pred_score"))
        if not math.isfinite(score):
            raise InputError(
                f"prediction {i} ({_short_name(path, i)}) has no finite score. Fix: give every record a numeric "
                "'score' (or 'pred_score')."
            )
        label = _field(rec, "label", "gt_label")
        label_f = as_float(label)
        items.append(
            _Item(
                index=i,
                name=_short_name(path, i),
                category=str(_field(rec, "category") or "all"),
                label=None if not math.isfinite(label_f) else int(label_f > 0),
                score=score,
                image=_field(rec, "image") if _field(rec, "image") is not None else path,
                anomaly_map=_field(rec, "anomaly_map"),
                overlay=_field(rec, "overlay", "overlay_path"),
                gt_mask=_field(rec, "gt_mask", "mask_path"),
                pred_mask=_field(rec, "pred_mask"),
            )
        )
    return items


def _load_map(value: Any) -> np.ndarray:
    if isinstance(value, str | Path):
        try:
            return as_map(np.load(value, allow_pickle=False))
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read the anomaly map {value}: {err}. Fix: save maps with numpy.save.") from err
    return as_map(value)


def _spread(items: list[_Item], k: int) -> list[_Item]:
    """Up to ``k`` items evenly spaced along the given order."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    picks = np.unique(np.rint(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in picks]


def select_cases(items: Sequence[Any], n_worst: int, n_gallery: int) -> tuple[list[Any], list[Any], list[Any]]:
    """Choose the pictures of one category.

    Args:
        items: Objects with ``label`` (0, 1 or ``None``), ``score`` and ``index`` attributes.
        n_worst: How many worst false positives and worst false negatives.
        n_gallery: Gallery size, spread evenly over the score order of the remaining items.

    Returns:
        ``(false_positives, false_negatives, gallery)``: the ``n_worst`` normal items with the highest scores
        (highest first), the ``n_worst`` anomalous items with the lowest scores (lowest first), and the gallery
        (highest score first). Ties keep the input order.
    """
    normal = sorted((it for it in items if it.label == 0), key=lambda it: (-it.score, it.index))
    anomalous = sorted((it for it in items if it.label == 1), key=lambda it: (it.score, it.index))
    fps, fns = normal[:n_worst], anomalous[:n_worst]
    shown = {id(it) for it in fps + fns}
    rest = sorted((it for it in items if id(it) not in shown), key=lambda it: (-it.score, it.index))
    return fps, fns, _spread(rest, n_gallery)


# ------------------------------------------------------------------------------------------------- rendering
def _thumb_rgb(rgb: np.ndarray, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h == height:
        return rgb
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def _encode(rgb: np.ndarray, compact: bool) -> bytes:
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if compact:
        img = img.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return png_bytes(img)


class _Renderer:
    """Renders thumbnails of prediction items with shared options."""

    def __init__(self, thumb_size: int, cmap: str, alpha: float, threshold: float | None, compact: bool):
        self.thumb_size = thumb_size
        self.cmap = cmap
        self.alpha = alpha
        self.threshold = threshold
        self.compact = compact

    def _optional(self, loader: Any, value: Any, what: str, item: _Item) -> Any:
        if value is None:
            return None
        try:
            return loader(value)
        except InputError as err:
            logger.warning("report: %s of %s left out: %s", what, item.name, err)
            return None

    def panel(self, item: _Item, value_range: tuple[float, float] | None, blank_gt: bool = False) -> np.ndarray | None:
        """The thumbnail panel of one item, or ``None`` when it has nothing to show.

        ``blank_gt``: show an empty ground truth for a normal image without a mask (MVTec has no mask files for
        good images), so that its columns line up with those of the anomalous images of the category.
        """
        if item.overlay is not None:
            ready = self._optional(as_rgb, item.overlay, "overlay", item)
            if ready is not None:
                return _thumb_rgb(ready, self.thumb_size)
        image = self._optional(as_rgb, item.image, "image", item)
        if item.anomaly_map is None:
            return None if image is None else _thumb_rgb(image, self.thumb_size)
        amap = _load_map(item.anomaly_map)
        h, w = image.shape[:2] if image is not None else amap.shape
        size = (self.thumb_size, max(1, round(w * self.thumb_size / h)))

        def render(gt: Any) -> np.ndarray:
            return overlay(
                image,
                amap,
                gt,
                item.pred_mask,
                value_range=value_range,
                cmap=self.cmap,
                alpha=self.alpha,
                threshold=self.threshold,
                size=size,
            )

        if item.gt_mask is None:
            blank = np.zeros(amap.shape, bool) if blank_gt and item.label == 0 else None
            return render(blank)
        try:
            return render(item.gt_mask)
        except InputError as err:  # an unreadable mask should not cost the whole picture
            logger.warning("report: ground truth of %s left out: %s", item.name, err)
            return render(None)

    def figure(self, item: _Item, value_range: tuple[float, float] | None, blank_gt: bool = False) -> str | None:
        """A ``<figure>`` with the thumbnail and a caption (name, score, label), or ``None``."""
        rgb = self.panel(item, value_range, blank_gt)
        if rgb is None:
            return None
        label = {0: "normal", 1: "anomalous"}.get(item.label, "unlabelled")  # type: ignore[arg-type]
        caption = f"{item.name} · score {item.score:.4g} · {label}"
        tag = _html.img_tag(_encode(rgb, self.compact), item.name, rgb.shape[1], rgb.shape[0])
        return f"<figure>{tag}<figcaption>{_html.esc(caption)}</figcaption></figure>"

    def scale_bar(self, value_range: tuple[float, float]) -> str:
        """A small colour bar with the range's end values."""
        ramp = colorize(np.tile(np.linspace(0.0, 1.0, 160), (12, 1)), self.cmap)
        png = png_bytes(np.rint(ramp * 255).astype(np.uint8))
        lo, hi = value_range
        return (
            f'<p class="scale note">colour scale: {lo:.4g} {_html.img_tag(png, "colour scale", 160, 12)} {hi:.4g}</p>'
        )


def _ranges(
    items: list[_Item], normalization: str | Sequence[float]
) -> tuple[dict[str, tuple[float, float] | None], str]:
    """The colour range per category and a sentence describing the choice."""
    cats = list(dict.fromkeys(it.category for it in items))
    if not isinstance(normalization, str):
        lo, hi = _check_range(normalization)
        return dict.fromkeys(cats, (lo, hi)), f"one fixed colour range [{lo:.4g}, {hi:.4g}] for every map"
    if normalization == "image":
        return dict.fromkeys(cats), "each map stretched to its own minimum and maximum"
    if normalization not in ("category", "global"):
        raise InputError(
            f"normalization must be 'category', 'global', 'image' or a (lo, hi) pair; got {normalization!r}."
        )

    def range_of(group: list[_Item]) -> tuple[float, float] | None:
        maps = [_load_map(it.anomaly_map) for it in group if it.anomaly_map is not None]
        if not maps:
            return None
        lo, hi = global_range(maps)
        return (lo, hi) if hi > lo else None

    if normalization == "global":
        rng = range_of(items)
        return dict.fromkeys(cats, rng), "one colour range (minimum to maximum of all maps) for every map"
    return (
        {c: range_of([it for it in items if it.category == c]) for c in cats},
        "one colour range per category (minimum to maximum of that category's maps)",
    )


# ---------------------------------------------------------------------------------------------------- report
def _plot_title(key: str) -> str:
    """``pixel_pro`` → ``Pixel PRO``: words capitalised, curve acronyms upper case."""
    words = [w.upper() if w.lower() in ("roc", "pro", "pr", "aupro", "auroc") else w for w in key.split("_") if w]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def _pixel_curves(items: list[_Item], fpr_limit: float, max_points: int = 400) -> dict[str, dict[str, Any]]:
    """Per-category pixel ROC and PRO curves from the records' maps and masks (streaming, bounded memory).

    A record counts when it has an anomaly map and either a ground-truth mask of the map's shape or the label 0
    (a normal image without a mask file: no defect pixel). Categories with a single pixel class are left out.

    Returns:
        ``{"pixel_roc": {category: curve}, "pixel_pro": {category: curve}}``; either may be empty.
    """
    from ..metrics.binned import BinnedPixelMetrics

    roc: dict[str, Any] = {}
    pro: dict[str, Any] = {}
    skipped = 0
    for c in dict.fromkeys(it.category for it in items):
        acc = BinnedPixelMetrics(fpr_limit=fpr_limit)
        for it in items:
            if it.category != c or it.anomaly_map is None or (it.gt_mask is None and it.label != 0):
                continue
            try:
                amap = _load_map(it.anomaly_map)
                mask = np.zeros(amap.shape, bool) if it.gt_mask is None else as_mask(it.gt_mask)
                if mask.shape != amap.shape:
                    skipped += 1
                    continue
                acc.update(amap[None], mask[None])
            except InputError as err:  # unreadable files, NaN maps: the pictures report them, curves skip them
                logger.warning("report: %s left out of the pixel curves: %s", it.name, err)
        r = acc.roc_curve(max_points=max_points)
        if math.isfinite(r["auc"]):
            roc[c] = r
        p = acc.pro_curve(max_points=max_points)
        if math.isfinite(p["aupro"]):
            pro[c] = p
    if skipped:
        logger.info("report: %d map(s) differ in size from their mask and are not in the pixel curves", skipped)
    return {"pixel_roc": roc, "pixel_pro": pro}


def _curve_images(
    items: list[_Item], curves: Mapping[str, Mapping[str, Any]] | None, fpr_limit: float
) -> list[tuple[str, bytes]]:
    plots: dict[str, Mapping[str, Any]] = {}
    cats = list(dict.fromkeys(it.category for it in items))
    auto = {}
    for c in cats:
        group = [it for it in items if it.category == c and it.label is not None]
        if len({it.label for it in group}) == 2:
            auto[c] = {"labels": [it.label for it in group], "scores": [it.score for it in group]}
    if auto and not (curves and "image_roc" in curves):
        plots["image_roc"] = auto
    for key, by_cat in _pixel_curves(items, fpr_limit).items():
        if by_cat and not (curves and key in curves):
            plots[key] = by_cat
    plots.update(curves or {})
    out = []
    for key, by_cat in plots.items():
        if not by_cat:
            continue
        title = _plot_title(key)
        if "pro" in key.lower():
            png = plot_pro(by_cat, title=title, fpr_limit=fpr_limit)
        else:
            png = plot_roc(by_cat, title=title)
        out.append((title, png))
    return out


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    predictions: Sequence[Any] = (),
    curves: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "ssmad report",
    *,
    info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    filename: str = REPORT_NAME,
    n_worst: int = 3,
    gallery_per_category: int = 4,
    max_images: int = 100,
    thumb_size: int = 128,
    normalization: str | Sequence[float] = "category",
    cmap: str = "jet",
    alpha: float = 0.5,
    threshold: float | None = None,
    fpr_limit: float = 0.3,
    compact: bool = True,
) -> Path:
    """Write the self-contained HTML report of one evaluation.

    Args:
        out_dir: Folder (created if needed), usually the run folder.
        metrics: The dict returned by ``ssmad.metrics.evaluate`` (class means, ``per_category``, ``definition``,
            ``metrics_version``).
        predictions: Prediction records (see the module docstring); may be empty for a metrics-only report.
        curves: Extra curve plots, ``{plot name: {category: curve}}``; a name containing ``pro`` is drawn with
            :func:`~ssmad.viz.curves.plot_pro`, any other with :func:`~ssmad.viz.curves.plot_roc`. Curves computed
            from the predictions are added unless a plot of that name is given: ``image_roc`` from the scores and
            labels, ``pixel_roc`` and ``pixel_pro`` (streaming bins) from the maps whose masks have the same size.
        title: Page title.
        info: Extra lines for the header table (model, dataset, run folder, ...).
        overwrite: Replace an existing report; otherwise an existing file is left as it is.
        filename: Name of the HTML file.
        n_worst: Worst false positives and worst false negatives shown per category.
        gallery_per_category: Further images per category, spread over the score range.
        max_images: Upper bound on the number of embedded overlays (worst cases first).
        thumb_size: Height in pixels of the overlay thumbnails.
        normalization: ``"category"``, ``"global"``, ``"image"`` or a fixed ``(lo, hi)`` colour range.
        cmap: Matplotlib colour map of the heat maps.
        alpha: Weight of the heat map over the image.
        threshold: Pixel threshold for the predicted-mask column (raw map values) when records carry no
            ``pred_mask``; ``None`` leaves the column out.
        fpr_limit: FPR limit of PRO plots.
        compact: Quantise thumbnails to a 256-colour palette (about 3× smaller files).

    Returns:
        The path of the written HTML file.

    Raises:
        OutputExistsError: The report exists and ``overwrite`` is false.
        InputError: Malformed metrics or predictions.
    """
    path = check_writable(Path(out_dir) / filename, overwrite)
    if thumb_size < 8 or max_images < 0 or n_worst < 0 or gallery_per_category < 0:
        raise InputError("thumb_size must be ≥ 8 and max_images, n_worst, gallery_per_category ≥ 0.")
    items = _items(predictions)
    columns = metric_columns(metrics)
    rows = metric_rows(metrics)
    ranges, range_note = _ranges(items, normalization)
    renderer = _Renderer(thumb_size, cmap, alpha, threshold, compact)
    cats = list(dict.fromkeys([name for name, _ in rows[:-1]] + [it.category for it in items]))
    cat_ids = {c: _html.slug(c, i) for i, c in enumerate(cats)}

    selected = {}
    for c in cats:
        group = [it for it in items if it.category == c]
        if group:
            selected[c] = select_cases(group, n_worst, gallery_per_category)

    # Header.
    meta = {
        "metric definition": metrics.get("definition", "–"),
        "metrics version": metrics.get("metrics_version", "–"),
        "images": f"{len(items)} ({sum(it.label == 0 for it in items)} normal, "
        f"{sum(it.label == 1 for it in items)} anomalous)",
        "ssmad": __version__,
        **(info or {}),
    }
    parts = [f"<h1>{_html.esc(title)}</h1>", '<table class="meta">']
    parts += [f"<tr><td>{_html.esc(k)}</td><td>{_html.esc(v)}</td></tr>" for k, v in meta.items()]
    parts.append("</table>")
    if selected:
        links = " ".join(f'<a href="#{cat_ids[c]}">{_html.esc(c)}</a>' for c in selected)
        parts.append(f"<nav>categories: {links}</nav>")

    # Metrics and curves.
    parts.append("<h2>Metrics</h2>")
    if columns:
        parts.append(_html.metrics_table(columns, rows))
        parts.append('<p class="note">Values ×100; "–" marks a metric that is undefined for that row.</p>')
    else:
        parts.append('<p class="note">No metric values were given.</p>')
    curve_pngs = _curve_images(items, curves, fpr_limit)
    if curve_pngs:
        parts.append('<h2>Curves</h2><div class="curves">')
        parts += [_html.img_tag(png, name) for name, png in curve_pngs]
        parts.append("</div>")

    # Cases per category, worst first everywhere, then galleries, within the image budget.
    budget = max_images
    allowed: dict[tuple[str, int], list[_Item]] = {}
    for slot in (0, 1, 2):
        for c, chosen in selected.items():
            take = chosen[slot][: max(budget, 0)]
            allowed[(c, slot)] = take
            budget -= len(take)
    left_out = sum(len(ch[s]) for c, ch in selected.items() for s in range(3)) - sum(len(v) for v in allowed.values())

    if selected:
        parts.append("<h2>Examples</h2>")
        parts.append(
            '<p class="note">Each picture: image | ground truth | anomaly map (heat overlay) | predicted mask '
            f"(the columns that have data). Heat colours: {_html.esc(range_note)}.</p>"
        )
        if left_out:
            parts.append(f'<p class="note">{left_out} more pictures not shown (max_images={max_images}).</p>')
    titles = (
        ("fp", "Worst false positives (highest-scoring normal images)"),
        ("fn", "Worst false negatives (lowest-scoring anomalous images)"),
        ("gallery", "Gallery (spread over the score range)"),
    )
    blank = {c: any(it.gt_mask is not None for it in items if it.category == c) for c in selected}
    for c in selected:
        parts.append(f'<h3 id="{cat_ids[c]}">{_html.esc(c)}</h3>')
        if ranges.get(c) is not None:
            parts.append(renderer.scale_bar(ranges[c]))  # type: ignore[arg-type]
        for slot, (key, heading) in enumerate(titles):
            figures = [f for f in (renderer.figure(it, ranges.get(c), blank[c]) for it in allowed[(c, slot)]) if f]
            if not figures:
                continue
            parts.append(f"<h4>{_html.esc(heading)}</h4>")
            parts.append(f'<div class="cases" id="{cat_ids[c]}-{key}">' + "".join(figures) + "</div>")

    parts.append(f'<p class="note">Generated by ssmad {_html.esc(__version__)}.</p>')
    document = _html.page(title, "\n".join(parts))
    write_text_atomic(path, document, overwrite=overwrite)
    logger.info("wrote %s (%.1f kB)", path, len(document) / 1024)
    return path


__all__ = [
    "METRICS_CSV",
    "METRICS_JSON",
    "REPORT_NAME",
    "metrics_csv_text",
    "select_cases",
    "write_metrics_files",
    "write_report",
]
