"""Indexing a Real-IAD-sized data set: time and peak memory of :func:`ssmad.data.discover`, one run.

Writes a synthetic index of ``--entries`` images (default 150,000, Real-IAD has 151,050) over ``--classes``
classes (default 30) in both index formats that hold such sets — Real-IAD's per-class JSON files and ADer's
``meta.json`` — with every entry pointing at one of a few real files per class (2 normal JPEGs, 1 defective JPEG
and its PNG mask, 64×64), one third of the test entries anomalous with a mask. Then, each in a fresh process,
``discover(root, layout, check=...)`` for ``--checks`` (``none``: parse the index and check that every listed
file exists; ``headers``: also open every image and mask header and compare sizes — the default of a run).

Reported per case: wall time, CPU time, the peak resident memory of the process (``ru_maxrss``, including the
interpreter, numpy and Pillow, about 60 MB), the Python heap of the returned list of records and of the
:class:`~ssmad.data.record_table.RecordTable` a dataset keeps instead (``tracemalloc``, taken in a separate run
so the timing is not traced). The files are few, so the operating system's cache holds them:
the header figures are a lower bound for a cold disk, where each header costs one small random read. Usage::

    python benchmarks/bench_data_index.py [--entries 150000] [--classes 30] [--checks none,headers]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

KINDS = ("AK", "BX", "CH", "HS", "PS", "QS", "YW", "ZW")


def _write_files(base: Path, cls: str, rng: np.random.Generator) -> dict[str, str]:
    """A few real files of one class under ``base/<cls>``; their paths relative to ``base/<cls>``."""
    names = {"ok0": "OK/S0001/a.jpg", "ok1": "OK/S0002/b.jpg", "ng": "NG/BX/S0003/c.jpg", "mask": "NG/BX/S0003/c.png"}
    for key, rel in names.items():
        path = base / cls / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if key == "mask":
            arr = np.zeros((64, 64), np.uint8)
            arr[10:30, 20:40] = 255
            Image.fromarray(arr, "L").save(path)
        else:
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(path, quality=90)
    return names


def write_indexes(root: Path, entries: int, classes: int) -> dict[str, Path]:
    """Real-IAD (``root/realiad``) and ADer (``root/ader``) indexes of ``entries`` images in all."""
    rng = np.random.default_rng(0)
    per_class = entries // classes
    realiad, ader = root / "realiad", root / "ader"
    jsons = realiad / "realiad_jsons" / "realiad_jsons"
    jsons.mkdir(parents=True)
    meta: dict[str, dict[str, list[dict[str, Any]]]] = {"train": {}, "test": {}}
    for c in range(classes):
        cls = f"class{c:02d}"
        names = _write_files(realiad / "realiad_1024", cls, rng)
        _write_files(ader, cls, rng)
        n_train = per_class * 45 // 100
        n_test = per_class - n_train
        train, test = [], []
        for i in range(n_train):
            train.append({"category": cls, "anomaly_class": "OK", "image_path": names[f"ok{i % 2}"], "mask_path": None})
        for i in range(n_test):
            if i % 3 == 0:
                kind = KINDS[i % len(KINDS)]
                test.append(
                    {"category": cls, "anomaly_class": kind, "image_path": names["ng"], "mask_path": names["mask"]}
                )
            else:
                test.append(
                    {"category": cls, "anomaly_class": "OK", "image_path": names[f"ok{i % 2}"], "mask_path": None}
                )
        doc = {"meta": {"prefix": cls, "normal_class": "OK"}, "train": train, "test": test}
        (jsons / f"{cls}.json").write_text(json.dumps(doc))

        def ader_entry(e: dict[str, Any], cls: str = cls) -> dict[str, Any]:
            bad = e["anomaly_class"] != "OK"
            return {
                "img_path": f"{cls}/{e['image_path']}",
                "mask_path": f"{cls}/{e['mask_path']}" if bad else "",
                "cls_name": cls,
                "specie_name": e["anomaly_class"] if bad else "good",
                "anomaly": int(bad),
            }

        meta["train"][cls] = [ader_entry(e) for e in train]
        meta["test"][cls] = [ader_entry(e) for e in test]
    (ader / "meta.json").write_text(json.dumps(meta))
    return {"realiad": realiad, "ader": ader}


def child(root: str, layout: str, check: str, trace: bool) -> dict[str, Any]:
    """One ``discover`` in this (fresh) process: wall, CPU, peak RSS and, with ``trace``, the records' heap."""
    from ssmad.data.layout import discover

    if trace:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    records = discover(root, layout, check=check)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {"n": len(records), "wall_s": wall, "cpu_s": cpu}
    if trace:
        from ssmad.data.record_table import RecordTable

        current, peak = tracemalloc.get_traced_memory()
        out.update(records_mb=current / 2**20, traced_peak_mb=peak / 2**20)
        table = RecordTable(records)  # what a dataset keeps (and its loader workers share)
        out["table_mb"] = (tracemalloc.get_traced_memory()[0] - current) / 2**20
        del table
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run_child(root: Path, layout: str, check: str, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(root), layout, check, str(int(trace))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=150_000)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--checks", default="none,headers")
    parser.add_argument("--layouts", default="realiad,ader")
    parser.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, layout, check, trace = args.child
        print(json.dumps(child(root, layout, check, trace == "1")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        roots = write_indexes(Path(tmp), args.entries, args.classes)
        sizes = {k: sum(p.stat().st_size for p in v.rglob("*.json")) / 2**20 for k, v in roots.items()}
        print(f"wrote {args.entries:,} entries in {args.classes} classes in {time.perf_counter() - t0:.1f} s; "
              f"index sizes: " + ", ".join(f"{k} {v:.1f} MB" for k, v in sizes.items()))  # fmt: skip
        print(f"{'layout':8} {'check':8} {'images':>8} {'wall s':>7} {'cpu s':>6} {'max RSS MB':>10} "
              f"{'records MB':>10} {'table MB':>8}")  # fmt: skip
        for layout in args.layouts.split(","):
            for check in args.checks.split(","):
                r = _run_child(roots[layout], layout, check, trace=False)
                heap = _run_child(roots[layout], layout, check, trace=True)
                print(f"{layout:8} {check:8} {r['n']:>8,} {r['wall_s']:>7.2f} {r['cpu_s']:>6.2f} "
                      f"{r['max_rss_mb']:>10.0f} {heap['records_mb']:>10.1f} {heap['table_mb']:>8.1f}")  # fmt: skip
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)")


if __name__ == "__main__":
    main()
