"""Pixel-metric benchmark: streaming binned accumulator vs the exact paths, time and peak memory in one run.

Three ways to get the pixel metrics of one category of ``--n`` maps of ``--size``² pixels with realistic masks
(about half the images defective, 1–3 elliptic defects of very different sizes, smooth maps):

* ``sklearn``  — ``roc_auc_score`` + ``average_precision_score`` + ``precision_recall_curve`` (F1-max) on all
  pixels: the usual way (three sorts; no AUPRO — sklearn has none);
* ``exact``    — :func:`ssmad.metrics.evaluate` (``definition="exact"``): one sort gives AUROC, AP, F1-max,
  IoU-max and the exact AUPRO;
* ``streaming`` — :class:`ssmad.metrics.BinnedPixelMetrics` fed batch by batch (``--batch``), then
  ``compute()``: the same five metrics from fixed-size histograms.

Time is the best of ``--repeats`` runs (wall clock, no tracing); peak memory is measured in a separate run with
``tracemalloc`` (numpy and Python allocations beyond the maps themselves, which all paths share). The maps are
generated up front and are not part of either number. Usage::

    python benchmarks/bench_metrics.py [--n 200] [--size 256] [--batch 16] [--bins 32768] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage


def realistic_maps(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, size, size)`` float32 maps and bool masks with elliptic defects on about half the images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        if rng.random() < 0.5:
            continue
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(2, size / 6, 2)
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    noise = rng.normal(size=(n, size // 4, size // 4)).astype(np.float32)
    base = ndimage.zoom(noise, (1, 4, 4), order=1) * 0.08 + 0.25
    bump = ndimage.gaussian_filter(masks.astype(np.float32), (0, 3, 3)) * rng.uniform(0.05, 0.5, (n, 1, 1))
    return (base + bump).astype(np.float32), masks


def run_sklearn(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    y, s = masks.reshape(-1), maps.reshape(-1)
    precision, recall, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {"pixel_AUROC": roc_auc_score(y, s), "pixel_AP": average_precision_score(y, s), "pixel_F1Max": f1.max()}


def run_exact(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from ssmad.metrics import evaluate

    labels = masks.any(axis=(1, 2))
    r = evaluate(maps.max(axis=(1, 2)), labels, maps, masks)
    return {k: r[k] for k in ("pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO", "pixel_IoUMax")}


def make_streaming(batch: int, n_bins: int, device: str) -> Callable[[Any, Any], dict[str, float]]:
    from ssmad.metrics import BinnedPixelMetrics

    def run(maps: Any, masks: Any) -> dict[str, float]:
        acc = BinnedPixelMetrics(n_bins)
        for i in range(0, len(maps), batch):
            acc.update(maps[i : i + batch], masks[i : i + batch])
        return acc.compute()

    return run


def timed(fn: Callable[..., Any], *args: Any, repeats: int, sync: Callable[[], None]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn(*args)
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_mib(fn: Callable[..., Any], *args: Any) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="number of maps")
    parser.add_argument("--size", type=int, default=256, help="map side in pixels")
    parser.add_argument("--batch", type=int, default=16, help="streaming batch size")
    parser.add_argument("--bins", type=int, default=2**15, help="streaming bins")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per path (best is reported)")
    parser.add_argument("--device", default="cpu", help="device of the streaming batches (cpu or cuda)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    maps, masks = realistic_maps(args.n, args.size)
    print(
        f"{args.n} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f} M pixels, "
        f"{masks.mean() * 100:.2f} % anomalous, {int(masks.any(axis=(1, 2)).sum())} defective images)"
    )
    stream_maps: Any = maps
    stream_masks: Any = masks
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if args.device != "cpu":
        import torch

        stream_maps = torch.from_numpy(maps).to(args.device)
        stream_masks = torch.from_numpy(masks).to(args.device)
        if stream_maps.is_cuda:
            sync = torch.cuda.synchronize
    streaming = make_streaming(args.batch, args.bins, args.device)

    rows: dict[str, dict[str, Any]] = {}
    for name, fn, a in (
        ("sklearn", run_sklearn, (maps, masks)),
        ("exact", run_exact, (maps, masks)),
        ("streaming", streaming, (stream_maps, stream_masks)),
    ):
        seconds, values = timed(fn, *a, repeats=args.repeats, sync=sync)
        mem = peak_mib(fn, *a) if name != "streaming" or args.device == "cpu" else float("nan")
        rows[name] = {"seconds": seconds, "peak_mib": mem, "values": {k: float(v) for k, v in values.items()}}

    print(f"\n{'path':<10} {'time [s]':>9} {'peak [MiB]':>11}  metrics")
    for name, row in rows.items():
        vals = "  ".join(f"{k.removeprefix('pixel_')}={v:.6f}" for k, v in row["values"].items())
        print(f"{name:<10} {row['seconds']:9.3f} {row['peak_mib']:11.1f}  {vals}")
    s, e, k = rows["streaming"], rows["exact"], rows["sklearn"]
    print(
        f"\nstreaming vs sklearn: {k['seconds'] / s['seconds']:.1f}x faster, "
        f"{k['peak_mib'] / s['peak_mib']:.0f}x less peak memory (target >= 10x faster)"
    )
    print(
        f"streaming vs exact:   {e['seconds'] / s['seconds']:.1f}x faster, "
        f"{e['peak_mib'] / s['peak_mib']:.0f}x less peak memory"
    )
    diffs = {m: abs(s["values"][m] - e["values"][m]) for m in s["values"]}
    print("streaming - exact:    " + "  ".join(f"{m.removeprefix('pixel_')}={d:.2e}" for m, d in diffs.items()))
    sk_diff = max(abs(e["values"][m] - k["values"][m]) for m in k["values"])
    print(f"exact - sklearn:      max {sk_diff:.2e}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "paths": rows, "streaming_minus_exact": diffs}, fh, indent=2)


if __name__ == "__main__":
    main()
