"""ACMamba vs global RX vs local RX on generated ABU-like scenes, and region- vs pixel-level training speed.

One run measures, side by side:

1. **Detection** — for every generated scene (sizes and band counts of ABU/HYDICE scenes) and every target tier,
   the 3-D ROC metrics (``AUC_DF``, ``AUC_Dtau``, ``AUC_Ftau``) and the wall time of ``fit_predict`` for
   ``acmamba``, ``rx`` and ``lrx``; ACMamba's margin over RX per scene and on average. Tiers: ``subpixel`` is the
   generator's default (targets mixed in at 5–30 % abundance — hard, RX ≈ 0.7–0.8), ``fullpixel`` puts whole
   targets in pixels (50–100 % abundance), like the cars, planes and ships of the ABU scenes.
2. **Training speed-up** — the same ACMamba model trained for the same number of iterations on regions (the
   paper's asymmetric detection) and on every pixel (``training="pixel"``); the ratio of the training-loop times
   (the paper claims 57.3×). Measured after a warm-up fit, so one-off costs (kernel loading) are not counted.
3. **End to end** — a 100×100×205 scene written as an ABU ``.mat`` file, loaded and scored (load → map), the
   figure the ≤ 30 s target on 2 CPU cores refers to.

Usage::

    python benchmarks/bench_acmamba.py [--tiers subpixel,fullpixel] [--scenes 100x100x205,...] \\
        [--iterations 100] [--speedup-iterations 10] [--threads N] [--device cpu] [--json out.json]

Timings on a shared machine are noisy; the script prints the machine load next to them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import ssmad
from ssmad.data.hsi import load_cube
from ssmad.data.synthetic.hsi import make_hsi_scene, write_abu_mat
from ssmad.metrics import hsi_metrics

DEFAULT_SCENES = "100x100x205,80x100x175,150x150x188,120x90x102"
TIERS: dict[str, tuple[float, float]] = {"subpixel": (0.05, 0.3), "fullpixel": (0.5, 1.0)}
MODELS = ("acmamba", "rx", "lrx")
KEYS = ("AUC_DF", "AUC_Dtau", "AUC_Ftau")

console = Console()


def parse_scene(spec: str) -> tuple[int, int, int]:
    h, w, b = (int(v) for v in spec.lower().split("x"))
    return h, w, b


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def detect(tiers: list[str], scenes: list[tuple[int, int, int]], iterations: int, device: str) -> list[dict[str, Any]]:
    rows = []
    for tier in tiers:
        for i, (h, w, b) in enumerate(scenes):
            cube, gt, _ = make_hsi_scene(h, w, b, target_abundance=TIERS[tier], seed=100 + i)
            row: dict[str, Any] = {"tier": tier, "scene": f"{h}x{w}x{b}", "anomaly_px": int(gt.sum())}
            for model in MODELS:
                kwargs: dict[str, Any] = {"device": device}
                if model == "acmamba":
                    kwargs["iterations"] = iterations
                det = ssmad.create_model(model, **kwargs)
                t0 = time.perf_counter()
                amap = det.fit_predict(cube)
                seconds = time.perf_counter() - t0
                m = hsi_metrics(amap, gt)
                row[model] = {**{k: float(m[k]) for k in KEYS}, "seconds": seconds}
                if model == "acmamba":
                    row[model]["timings"] = det.timings_
                    row[model]["n_regions"] = det.n_regions_
            row["margin_DF"] = row["acmamba"]["AUC_DF"] - row["rx"]["AUC_DF"]
            rows.append(row)
            console.print(
                f"{tier:9s} {row['scene']:>12s}  "
                + "  ".join(f"{m} {row[m]['AUC_DF']:.4f} ({row[m]['seconds']:.1f}s)" for m in MODELS)
                + f"  margin {row['margin_DF']:+.4f}   load {load_average()}",
                highlight=False,
            )
    return rows


def speedup(scene: tuple[int, int, int], iterations: int, device: str) -> dict[str, Any]:
    h, w, b = scene
    cube, _, _ = make_hsi_scene(h, w, b, seed=7)
    ssmad.create_model("acmamba", iterations=2, device=device).fit(cube[:40, :40])  # warm-up (kernel loading)
    out: dict[str, Any] = {"scene": f"{h}x{w}x{b}", "iterations": iterations}
    for mode in ("region", "pixel"):
        det = ssmad.create_model("acmamba", iterations=iterations, training=mode, device=device).fit(cube)
        out[mode] = {"train_s": det.timings_["train_s"], "sequence_length": det.n_regions_}
        console.print(
            f"{mode}-level training: {iterations} iterations on sequences of {det.n_regions_} in "
            f"{det.timings_['train_s']:.2f}s   load {load_average()}",
            highlight=False,
        )
    out["speedup"] = out["pixel"]["train_s"] / out["region"]["train_s"]
    return out


def end_to_end(iterations: int, device: str) -> dict[str, Any]:
    cube, gt, wl = make_hsi_scene(100, 100, 205, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_abu_mat(Path(tmp) / "scene.mat", cube, gt, wl)
        t0 = time.perf_counter()
        loaded = load_cube(path)
        det = ssmad.create_model("acmamba", iterations=iterations, device=device)
        amap = det.fit_predict(loaded.cube)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "timings": det.timings_, "AUC_DF": float(hsi_metrics(amap, gt)["AUC_DF"])}


def print_tables(rows: list[dict[str, Any]], tiers: list[str]) -> dict[str, Any]:
    means: dict[str, Any] = {}
    for tier in tiers:
        t = Table(title=f"tier {tier}: target abundance {TIERS[tier][0]}–{TIERS[tier][1]}")
        t.add_column("scene")
        t.add_column("model")
        for k in KEYS:
            t.add_column(k.replace("tau", "τ"), justify="right")
        t.add_column("s", justify="right")
        t.add_column("ACMamba − RX", justify="right")
        tier_rows = [r for r in rows if r["tier"] == tier]
        for r in tier_rows:
            for j, m in enumerate(MODELS):
                margin = f"{r['margin_DF']:+.4f}" if j == 0 else ""
                t.add_row(r["scene"] if j == 0 else "", m, *(f"{r[m][k]:.4f}" for k in KEYS), f"{r[m]['seconds']:.1f}",
                          margin, end_section=j == len(MODELS) - 1)  # fmt: skip
        means[tier] = {m: {k: float(np.mean([r[m][k] for r in tier_rows])) for k in (*KEYS, "seconds")} for m in MODELS}
        means[tier]["margin_DF"] = float(np.mean([r["margin_DF"] for r in tier_rows]))
        for j, m in enumerate(MODELS):
            t.add_row("mean" if j == 0 else "", m, *(f"{means[tier][m][k]:.4f}" for k in KEYS),
                      f"{means[tier][m]['seconds']:.1f}", f"{means[tier]['margin_DF']:+.4f}" if j == 0 else "",
                      style="bold")  # fmt: skip
        console.print(t)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiers", default="subpixel,fullpixel", help="comma-separated target tiers")
    parser.add_argument("--scenes", default=DEFAULT_SCENES, help="comma-separated HxWxB sizes")
    parser.add_argument("--iterations", type=int, default=100, help="ACMamba training iterations (upstream 100)")
    parser.add_argument("--speedup-scene", default="100x100x205", help="scene of the region-vs-pixel comparison")
    parser.add_argument("--speedup-iterations", type=int, default=10, help="iterations of BOTH trainings compared")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: detect, speedup, e2e")
    parser.add_argument("--json", default=None, help="write every number to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    tiers = [t for t in args.tiers.split(",") if t]
    scenes = [parse_scene(s) for s in args.scenes.split(",") if s]
    skip = set(args.skip.split(","))
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "device": args.device,
        "load_at_start": load_average(),
    }
    console.print(f"environment: {env}", highlight=False)
    report: dict[str, Any] = {"environment": env}
    if "speedup" not in skip:
        report["speedup"] = sp = speedup(parse_scene(args.speedup_scene), args.speedup_iterations, args.device)
        console.print(
            f"[bold]region vs pixel training speed-up: {sp['speedup']:.1f}×[/bold] ({sp['iterations']} iterations "
            f"each, {sp['region']['sequence_length']} regions vs {sp['pixel']['sequence_length']} pixels; paper 57.3×)"
        )
    if "e2e" not in skip:
        report["end_to_end"] = e2e = end_to_end(args.iterations, args.device)
        t = e2e["timings"]
        console.print(
            f"[bold]100×100×205 end to end (load → map): {e2e['seconds']:.1f}s[/bold] (prepare {t['prepare_s']:.1f}s, "
            f"train {t['train_s']:.1f}s, inference {t['inference_s']:.1f}s; AUC_DF {e2e['AUC_DF']:.4f}) "
            f"load {load_average()}"
        )
    if "detect" not in skip:
        rows = detect(tiers, scenes, args.iterations, args.device)
        report["scenes"] = rows
        report["mean"] = print_tables(rows, tiers)
    report["environment"]["load_at_end"] = load_average()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
