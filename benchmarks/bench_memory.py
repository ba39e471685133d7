"""Peak memory of evaluation and prediction at scale: does it stay bounded as the number or size of images grows?

Each measurement runs in its own subprocess (a fresh interpreter; peak RSS from ``resource.getrusage``, the
operating system's high-water mark of the process) so that one case cannot inherit another's allocations:

* ``evaluate N`` — ``ImageDetector.evaluate`` + ``write_evaluation`` (metrics files, 64 overlays, report.html) on
  ``N`` synthetic 256×256 test images (half anomalous, with masks) written to a temporary folder. The network is a
  small random CNN (the cost under study is the evaluation's, not the model's); ``--force exact|streaming``
  overrides the automatic choice (exact up to 2^28 map pixels, streaming above);
* ``predict S[:mode]`` — ``ssmad predict`` logic (:func:`ssmad.engine.runner.predict_run`) on one ``S×S`` image:
  decoding, the map at the input resolution, the overlay PNG; ``:model`` writes them at the model's resolution,
  ``:unlimited`` lifts the pixel limit (``--max-pixels``) that otherwise stops images above 2^23 pixels.

Usage::

    python benchmarks/bench_memory.py [--images 500 5000] [--predict 1024 4096 4096:model 4096:unlimited]
                                      [--force auto|exact|streaming] [--json OUT]

Prints one row per case (peak RSS in MiB, wall seconds) and the ratio of the largest to the smallest evaluation.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ssmad.detectors import ImageDetector

SIZE = 256


# ------------------------------------------------------------------------------------------------- tiny model
@dataclass(frozen=True)
class _Config:
    image_size: int = SIZE


class _Net(nn.Module):
    """A random two-scale CNN with the feature-reconstruction interface (encoder features vs. a decoder's)."""

    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(self, config: _Config | None = None) -> None:
        super().__init__()
        self.config = config or _Config()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 4, 1), nn.ReLU())
        self.decoder = nn.Conv2d(8, 8, 3, 1, 1)

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        enc = self.encoder(images)
        return [enc], [self.decoder(enc)]

    def anomaly_map(self, enc: list[Tensor], dec: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        dist = 1 - F.cosine_similarity(enc[0], dec[0], dim=1).unsqueeze(1)
        return F.interpolate(dist, size=out_size, mode="bilinear", align_corners=False)


class _Detector(ImageDetector):
    model_name = "bench_tiny"
    network_path = f"{__name__}:_Net"

    @classmethod
    def config_class(cls) -> type:
        return _Config

    def _build_network(self, config: Any | None = None) -> nn.Module:
        return _Net(config)


def _fitted() -> _Detector:
    from ssmad.data.transforms import Preprocessing

    torch.manual_seed(0)
    det = _Detector(trainer={"device": "cpu", "eval_batch_size": 16, "progress": False})
    det.net_ = _Net().eval()
    det.preprocessing_ = Preprocessing(image_size=SIZE, mean=_Net.mean, std=_Net.std)
    det.threshold_, det.pixel_threshold_, det.threshold_info_ = 0.5, 0.5, "fixed for the benchmark"
    det.history_, det.n_train_, det.categories_ = [], 0, ["bench"]
    return det


# ------------------------------------------------------------------------------------------------- data
def write_dataset(root: Path, n: int, size: int = SIZE) -> Path:
    """``n`` test images (half with a square defect and its mask) in the MVTec layout under ``root/bench``."""
    rng = np.random.default_rng(0)
    cat = root / "bench"
    base = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
    (cat / "train" / "good").mkdir(parents=True)
    Image.fromarray(base).save(cat / "train" / "good" / "000.png")
    for i in range(n):
        img = base.copy()
        img[rng.integers(0, size, 20), rng.integers(0, size, 20)] = 255  # a little noise: no two images alike
        anomalous = i % 2 == 1
        folder = cat / "test" / ("defect" if anomalous else "good")
        folder.mkdir(parents=True, exist_ok=True)
        if anomalous:
            y, x = (int(v) for v in rng.integers(16, size - 48, 2))
            s = int(rng.integers(8, 32))
            img[y : y + s, x : x + s] = (255, 0, 0)
            mask = np.zeros((size, size), np.uint8)
            mask[y : y + s, x : x + s] = 255
            mdir = cat / "ground_truth" / "defect"
            mdir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(mdir / f"{i:05d}_mask.png")
        Image.fromarray(img).save(folder / f"{i:05d}.png", compress_level=1)
    return root


# ------------------------------------------------------------------------------------------------- cases
def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def case_evaluate(data: Path, force: str, out: Path) -> dict[str, Any]:
    from ssmad.data.layout import discover
    from ssmad.engine.runner import write_evaluation

    torch.set_num_threads(1)
    det = _fitted()
    records = discover(data, split="test", check="none")
    limit = {"auto": None, "exact": 2**62, "streaming": 0}[force]
    t0 = time.perf_counter()
    metrics, results = det.evaluate(records, return_results=True, exact_max_pixels=limit)
    write_evaluation(
        out,
        metrics,
        results,
        pixel_threshold=det.pixel_threshold_,
        images=64,
        report=True,
        title="bench",
        info={},
        maps_for=lambda idx: det.maps_of(records, results, idx),
    )
    return {
        "n_images": len(records),
        "definition": metrics["definition"],
        "pixel_AUROC": metrics.get("pixel_AUROC"),
        "seconds": time.perf_counter() - t0,
        "peak_mib": _peak_mib(),
    }


def case_predict(size: int, mode: str, work: Path) -> dict[str, Any]:
    from ssmad.engine.runner import predict_run

    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    image = work / f"big{size}.png"
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(image, compress_level=1)
    run = _fitted().save(work / "run")
    import ssmad.registry

    ssmad.registry.DETECTORS["bench_tiny"] = f"{__name__}:_Detector"
    base = _peak_mib()
    t0 = time.perf_counter()
    try:
        options: dict[str, Any] = {"model": {"map_resolution": "model"}, "unlimited": {"max_pixels": size * size}}
        predict_run(run, image, work / "out", **options.get(mode, {}))
        outcome = "written"
    except Exception as err:  # the size limit: report its message
        outcome = f"{type(err).__name__}: {str(err)[:160]}"
    seconds = time.perf_counter() - t0
    return {"size": size, "mode": mode, "outcome": outcome, "seconds": seconds, "peak_mib": _peak_mib(),
            "peak_before_mib": base}  # fmt: skip


def _child(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="ssmad-bench-mem-"))
    if args.child == "evaluate":
        row = case_evaluate(Path(args.data), args.force, work / "eval")
    else:
        size, _, mode = args.value.partition(":")
        row = case_predict(int(size), mode or "input", work)
    print("RESULT " + json.dumps(row))


def _run_child(*extra: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child {extra} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="*", default=[500, 5000])
    parser.add_argument(
        "--predict",
        nargs="*",
        default=["1024", "2048", "4096", "4096:model"],
        help="image sizes, each optionally with :model (maps at the model's size) or :unlimited (no pixel limit)",
    )
    parser.add_argument("--force", choices=("auto", "exact", "streaming"), default="auto")
    parser.add_argument("--json", help="also write the rows to this (new) file")
    parser.add_argument("--child", choices=("evaluate", "predict"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--value", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssmad-bench-mem-data-") as tmp:
        for n in args.images:
            data = write_dataset(Path(tmp) / f"n{n}", n)
            row = _run_child("--child", "evaluate", "--data", str(data), "--force", args.force)
            rows.append({"case": f"evaluate {n}", **row})
            print(f"evaluate {n:>6} images ({row['definition']:>7}): peak RSS {row['peak_mib']:8.1f} MiB, "
                  f"{row['seconds']:7.1f} s", flush=True)  # fmt: skip
        for s in args.predict:
            row = _run_child("--child", "predict", "--value", s)
            rows.append({"case": f"predict {s}", **row})
            head = f"predict {row['size']}×{row['size']} ({row['mode']})"
            print(f"{head}: peak RSS {row['peak_mib']:8.1f} MiB (before: {row['peak_before_mib']:.1f}), "
                  f"{row['seconds']:6.1f} s — {row['outcome']}", flush=True)  # fmt: skip
    evals = [r for r in rows if r["case"].startswith("evaluate")]
    if len(evals) >= 2:
        lo, hi = evals[0], evals[-1]
        print(f"images ×{hi['n_images'] / lo['n_images']:.0f} → peak RSS ×{hi['peak_mib'] / lo['peak_mib']:.2f}")
    if args.json:
        with open(args.json, "x") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
