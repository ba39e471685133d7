"""metrics.json / metrics.csv: content, strict JSON (NaN → null), no overwrite, atomic writes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ssmad.errors import InputError
from ssmad.metrics import evaluate, hsi_metrics, metric_rows, write_metrics_csv, write_metrics_json


def _result() -> dict:
    rng = np.random.default_rng(0)
    maps = rng.random((6, 16, 16))
    masks = np.zeros((6, 16, 16), bool)
    masks[1, 2:5, 2:6] = masks[4, 8:12, 1:3] = True
    labels = masks.any(axis=(1, 2)).astype(int)
    maps[masks] += 0.5
    cats = ["a", "a", "a", "b", "b", "c"]  # c has one normal image → NaN metrics
    return evaluate(maps.max(axis=(1, 2)), labels, maps, masks, cats, curves=True)


def test_json_round_trip_is_strict_and_records_the_definition(tmp_path: Path) -> None:
    r = _result()
    path = write_metrics_json(r, tmp_path / "run" / "metrics.json")
    text = path.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["definition"] == "exact" and data["metrics_version"] == r["metrics_version"]
    assert "curves" not in data
    assert data["per_category"]["c"]["image_AUROC"] is None  # NaN → null
    assert data["image_AUROC"] == pytest.approx(r["image_AUROC"], rel=0, abs=0)  # full precision
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary file left behind


def test_csv_rows_with_mean_row(tmp_path: Path) -> None:
    r = _result()
    path = write_metrics_csv(r, tmp_path / "metrics.csv")
    rows = list(csv.DictReader(path.open()))
    assert [row["category"] for row in rows] == ["a", "b", "c", "mean"]
    assert list(rows[0])[1:8] == [
        "image_AUROC",
        "image_AP",
        "image_F1Max",
        "pixel_AUROC",
        "pixel_AP",
        "pixel_F1Max",
        "pixel_AUPRO",
    ]
    assert float(rows[0]["pixel_AUPRO"]) == r["per_category"]["a"]["pixel_AUPRO"]
    assert float(rows[-1]["mAD"]) == r["mAD"]
    assert rows[2]["image_AUROC"] == "nan"


def test_existing_files_are_never_overwritten_unless_asked(tmp_path: Path) -> None:
    r = _result()
    target = tmp_path / "metrics.json"
    target.write_text("precious")
    with pytest.raises(InputError, match="exists already"):
        write_metrics_json(r, target)
    assert target.read_text() == "precious"
    write_metrics_json(r, target, overwrite=True)
    assert json.loads(target.read_text())["definition"] == "exact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_rows_of_hyperspectral_scenes_use_a_nan_ignoring_mean() -> None:
    gt = np.zeros((6, 6), bool)
    gt[2:4, 2:4] = True
    scenes = {"s1": hsi_metrics(gt * 1.0, gt), "s2": hsi_metrics(np.arange(36.0).reshape(6, 6), gt)}
    rows = metric_rows(scenes)
    assert [row["category"] for row in rows] == ["s1", "s2", "mean"]
    assert rows[-1]["AUC_DF"] == pytest.approx((scenes["s1"]["AUC_DF"] + scenes["s2"]["AUC_DF"]) / 2)
    assert list(rows[0])[1] == "AUC_DF"
    assert not any(isinstance(v, float) and math.isinf(v) for row in rows for v in row.values())
