"""Threshold helpers of the evaluation loop against brute force, and the map back-projection of predictions."""

from __future__ import annotations

import numpy as np
import pytest

from ssmad.data.transforms import Preprocessing
from ssmad.engine.evaluate import Collected, f1_thresholds, quantile_thresholds
from ssmad.engine.predict import map_to_input


def _brute_f1(values: np.ndarray, targets: np.ndarray, t: float) -> float:
    pred = values >= t
    tp = int((pred & (targets == 1)).sum())
    fp = int((pred & (targets == 0)).sum())
    fn = int((~pred & (targets == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_f1_thresholds_are_optimal() -> None:
    rng = np.random.default_rng(4)
    n, h, w = 12, 6, 5
    labels = np.r_[np.zeros(6, np.int64), np.ones(6, np.int64)]
    scores = np.round(rng.normal(labels, 0.8), 1)  # ties included
    masks = (rng.random((n, h, w)) < 0.2).astype(np.uint8) * labels[:, None, None].astype(np.uint8)
    maps = np.round(rng.normal(masks.astype(np.float32), 0.7), 1).astype(np.float32)
    res = Collected(
        scores=scores,
        maps=maps,
        labels=labels,
        masks=masks,
        has_mask=np.ones(n, bool),
        categories=["c"] * n,
        defect_types=["good"] * 6 + ["x"] * 6,
        paths=[str(i) for i in range(n)],
    )
    image_t, pixel_t = f1_thresholds(res)
    best_image = max(_brute_f1(scores, labels, t) for t in np.unique(scores))
    assert _brute_f1(scores, labels, image_t) == pytest.approx(best_image)
    v, y = maps.ravel().astype(np.float64), masks.ravel()
    best_pixel = max(_brute_f1(v, y, t) for t in np.unique(v))
    assert _brute_f1(v, y, pixel_t) == pytest.approx(best_pixel)


def test_quantile_thresholds() -> None:
    scores = np.arange(101, dtype=np.float64)
    maps = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    assert quantile_thresholds(scores, None, 0.99, None) == (99.0, 99.0)
    image, pixel = quantile_thresholds(scores, maps, 0.5, 0.9)
    assert image == 50.0 and pixel == pytest.approx(np.quantile(np.arange(1000), 0.9))


def test_map_to_input_undoes_resize_and_crop() -> None:
    amap = np.arange(16, dtype=np.float32).reshape(4, 4)
    same = map_to_input(amap, (4, 4), Preprocessing(image_size=4))
    np.testing.assert_array_equal(same, amap)
    # resize 6 → crop 4: the map sits in the centre of a 6×6 frame filled with its minimum, then scaled to 12×12
    framed = map_to_input(amap, (6, 6), Preprocessing(image_size=6, crop_size=4))
    assert framed.shape == (6, 6)
    np.testing.assert_array_equal(framed[1:5, 1:5], amap)
    assert (framed[0] == amap.min()).all() and (framed[:, 5] == amap.min()).all()
    up = map_to_input(amap, (8, 12), Preprocessing(image_size=4))
    assert up.shape == (8, 12) and up.dtype == np.float32
    assert amap.min() <= up.min() and up.max() <= amap.max()
