"""MambaADv2 ablation: MambaAD, full MambaADv2 and MambaADv2 with each novelty switched off, over several seeds.

One command builds the whole README table::

    nice -n 10 python benchmarks/bench_mambaadv2_ablation.py --out results/ablation_v2

1. writes a synthetic MVTec-style data set with ``ssmad data synth mvtec`` (unless ``--data`` points at one);
2. for every seed, trains every row (rows interleaved inside a seed, so a change in machine load touches all rows
   alike) with the same encoder, image size, decoder depths, epochs, batch size and seed, evaluates it on the test
   split and times inference (model forward on the test images, no grad, after one warm-up batch);
3. prints a Markdown table — image_AUROC, pixel_AUROC, pixel_AUPRO as mean ± spread (half the range) over seeds,
   inference images/s (median over seeds, wall clock) — and writes it with every run's raw numbers (JSON) to
   ``--out`` (new files only).

Rows (``--rows`` selects some): ``mambaad`` (the baseline, Hilbert × ``--directions``), ``full`` (MambaADv2 with
every novelty on), and ``-matrix``, ``-trapezoid``, ``-rotary``, ``-bc_norm``, ``-freq_conv``, ``-progressive``
(that one switch off). The defaults are sized for ≤ 35 min on a loaded 2-core machine; they are tiny, so the table
measures tendencies on synthetic textures, not MVTec performance.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROWS: dict[str, dict[str, Any] | None] = {
    "mambaad": None,
    "full": {},
    "-matrix": {"matrix_path": False},
    "-trapezoid": {"trapezoid": False},
    "-rotary": {"rotary": False},
    "-bc_norm": {"bc_norm": False},
    "-freq_conv": {"freq_conv": False},
    "-progressive": {"progressive": False},
}
LABELS = {
    "mambaad": "MambaAD (Hilbert × 8, LSS)",
    "full": "MambaADv2, full",
    "-matrix": "MambaADv2 − matrix path",
    "-trapezoid": "MambaADv2 − trapezoid",
    "-rotary": "MambaADv2 − rotary state",
    "-bc_norm": "MambaADv2 − B/C RMSNorm",
    "-freq_conv": "MambaADv2 − frequency conv (LSS 5×5/7×7 branches)",
    "-progressive": "MambaADv2 − progressive scan (Hilbert × 8 everywhere)",
}
METRICS = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")

logger = logging.getLogger("ablation")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="new folder for the data, table and raw results")
    p.add_argument("--data", default=None, help="an existing MVTec-style root (default: synthesise one in --out)")
    p.add_argument("--categories", nargs="+", default=["brick", "grass", "wood"])
    p.add_argument("--n-train", type=int, default=20)
    p.add_argument("--n-test-good", type=int, default=8)
    p.add_argument("--n-test-defect", type=int, default=3)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--encoder", default="tf_efficientnet_lite0")
    p.add_argument("--depths", type=int, nargs=4, default=[2, 2, 2, 2])
    p.add_argument("--directions", type=int, default=8, help="MambaAD's directions; MambaADv2's coarsest stage's")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine more threads wait on each other far more than they gain)",
    )
    return p.parse_args()


def _synthesise(root: Path, args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "ssmad", "data", "synth", "mvtec", "--out", str(root), "--categories"]
    cmd += [*args.categories, "--image-size", str(max(args.image_size, 128)), "--n-train", str(args.n_train)]
    cmd += ["--n-test-good", str(args.n_test_good), "--n-test-defect", str(args.n_test_defect), "--seed", "0"]
    subprocess.run(cmd, check=True)


def _options(row: str, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    common = {
        "encoder": args.encoder,
        "pretrained": True,
        "image_size": args.image_size,
        "decoder_depths": tuple(args.depths),
        "num_directions": args.directions,
    }
    switches = ROWS[row]
    if switches is None:
        return "mambaad", common
    return "mambaadv2", {**common, **switches}


def _images_per_second(det: Any, root: Path, batch: int) -> tuple[float, float]:
    """Wall-clock and CPU-time images/s of ``det.net_`` on the test images (one warm-up batch first)."""
    ds = det._evaluation_data(root, det.preprocessing_)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    net = det.net_.eval()
    with torch.no_grad():
        net(images[:batch])
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(images), batch):
            net(images[i : i + batch])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(images) / wall, len(images) / cpu


def _run(row: str, seed: int, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    import ssmad

    name, options = _options(row, args)
    trainer = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "eval_batch_size": 16,
        "seed": seed,
        "device": "cpu",
        "checkpoint_every": 0,
        "log_every": 0,
    }
    det = ssmad.create_model(name, trainer=trainer, **options)
    t0 = time.perf_counter()
    det.fit(root)
    train_s = time.perf_counter() - t0
    metrics = det.evaluate(root)
    ips, ips_cpu = _images_per_second(det, root, 16)
    plan = getattr(det.net_.decoder, "scan_plan", None)
    return {
        "row": row,
        "seed": seed,
        **{k: float(metrics[k]) for k in METRICS},
        "train_s": train_s,
        "images_per_s": ips,
        "images_per_cpu_s": ips_cpu,
        "scan_plan": None if plan is None else plan.tolist(),
        "load": os.getloadavg()[0],
    }


def _cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = (max(values) - min(values)) / 2
    return f"{mean:.3f} ± {spread:.3f}"


def table(runs: list[dict[str, Any]], rows: list[str]) -> str:
    """The Markdown ablation table from the raw runs."""
    lines = [
        "| row | image_AUROC | pixel_AUROC | pixel_AUPRO | inference images/s (wall) | images per CPU-s | scan plan |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        rs = [r for r in runs if r["row"] == row]
        if not rs:
            continue
        cells = [_cell([r[k] for r in rs]) for k in METRICS]
        ips = statistics.median(r["images_per_s"] for r in rs)
        ipc = statistics.median(r["images_per_cpu_s"] for r in rs)
        plans = {str(r["scan_plan"]) for r in rs if r["scan_plan"] is not None}
        lines.append(
            f"| {LABELS[row]} | {' | '.join(cells)} | {ips:.1f} | {ipc:.1f} | {', '.join(sorted(plans)) or '8 × 4'} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = _parse()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        msg = f"{out} exists and is not empty; give --out a new folder (results are never overwritten)"
        print(msg, file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.data) if args.data else out / "data"
    if not args.data:
        _synthesise(root, args)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        for row in args.rows:
            t0 = time.perf_counter()
            result = _run(row, seed, root, args)
            runs.append(result)
            logger.info(
                "seed %d %-13s %s  %.1f img/s  (%.0f s)",
                seed,
                row,
                "  ".join(f"{k} {result[k]:.3f}" for k in METRICS),
                result["images_per_s"],
                time.perf_counter() - t0,
            )
            (out / "runs.json").write_text(json.dumps(runs, indent=1))
    minutes = (time.perf_counter() - t_start) / 60
    header = (
        f"settings: {len(args.categories)} synthetic categories ({', '.join(args.categories)}), {args.n_train} train "
        f"images each, {args.image_size}×{args.image_size}, encoder {args.encoder} (ImageNet), decoder depths "
        f"{args.depths}, {args.epochs} epochs, batch {args.batch_size}, seeds {args.seeds}, {args.threads} thread(s); "
        f"{minutes:.1f} min wall, load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after "
        f"({os.cpu_count()} CPUs); mean ± half-range over seeds, images/s = median over seeds"
    )
    text = header + "\n\n" + table(runs, args.rows)
    print(text)
    (out / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
