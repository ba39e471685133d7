"""Exact AUROC / AP / F1-max / IoU-max against scikit-learn on random cases with many ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from ssmad.errors import InputError
from ssmad.metrics import auroc, average_precision, evaluate, f1_max, rank_counts, roc_curve_points
from ssmad.metrics.curves import area_to_limit, iou_max_of


def _sklearn_f1_max(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    precision, recall, thresholds = precision_recall_curve(y, s)
    denom = precision + recall
    f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    k = int(np.argmax(f1[:-1]))  # the last point (P=1, R=0) has no threshold and F1 = 0
    return float(f1[k]), float(thresholds[k])


def _case(rng: np.random.Generator, n: int, levels: int | None, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    y = rng.random(n) < rng.uniform(0.05, 0.6)
    y[0], y[1] = True, False  # both classes present
    s = rng.normal(size=n) + 1.2 * y
    if levels is not None:  # quantise → heavy ties, also across the classes
        s = np.round(s * levels) / levels
    return y.astype(int), s.astype(dtype)


@pytest.mark.parametrize("seed", range(12))
def test_equal_to_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    levels = [None, 1, 3, 20][seed % 4]
    y, s = _case(rng, n, levels, np.float64 if seed % 2 else np.float32)
    assert abs(auroc(y, s) - roc_auc_score(y, s)) < 1e-9
    assert abs(average_precision(y, s) - average_precision_score(y, s)) < 1e-9
    f1, thr = f1_max(y, s)
    f1_ref, thr_ref = _sklearn_f1_max(y, s)
    assert abs(f1 - f1_ref) < 1e-9
    # the threshold reaches the F1 it claims (several thresholds can tie for the maximum)
    pred = s >= thr
    tp = int(np.sum(pred & (y == 1)))
    assert abs(2 * tp / (pred.sum() + y.sum()) - f1_ref) < 1e-9
    assert thr in set(s.tolist()) and thr_ref in set(s.tolist())


def test_iou_max_against_a_brute_force_threshold_sweep() -> None:
    rng = np.random.default_rng(3)
    y, s = _case(rng, 400, 10, np.float64)
    best = 0.0
    for t in np.unique(s):
        pred = s >= t
        inter = np.sum(pred & (y == 1))
        best = max(best, inter / np.sum(pred | (y == 1)))
    assert iou_max_of(rank_counts(y.astype(bool), s))[0] == pytest.approx(best, abs=1e-12)


def test_evaluate_image_metrics_equal_sklearn_per_category() -> None:
    rng = np.random.default_rng(7)
    y, s = _case(rng, 500, 5, np.float64)
    cats = np.where(np.arange(500) % 3 == 0, "a", "b")
    cats[:2] = ["a", "a"]
    cats[2:4] = ["b", "b"]
    y[2], y[3] = 1, 0
    r = evaluate(list(s), list(y), categories=list(cats))
    for c in ("a", "b"):
        sel = cats == c
        assert r["per_category"][c]["image_AUROC"] == pytest.approx(roc_auc_score(y[sel], s[sel]), abs=1e-12)
        assert r["per_category"][c]["image_AP"] == pytest.approx(average_precision_score(y[sel], s[sel]), abs=1e-12)
        assert r["per_category"][c]["image_F1Max"] == pytest.approx(_sklearn_f1_max(y[sel], s[sel])[0], abs=1e-12)
    mean = np.mean([roc_auc_score(y[cats == c], s[cats == c]) for c in ("a", "b")])
    assert r["image_AUROC"] == pytest.approx(mean, abs=1e-12)


def test_roc_points_match_sklearn_curve() -> None:
    rng = np.random.default_rng(11)
    y, s = _case(rng, 300, 4, np.float64)
    pts = roc_curve_points(y, s)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(pts["fpr"], fpr, atol=1e-12)
    np.testing.assert_allclose(pts["tpr"], tpr, atol=1e-12)
    np.testing.assert_array_equal(pts["thresholds"], thr)
    assert pts["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    thinned = roc_curve_points(y, s, max_points=10)
    assert thinned["fpr"].size <= 10
    assert (thinned["fpr"][0], thinned["fpr"][-1]) == (0.0, 1.0)
    assert thinned["auc"] == pts["auc"]


def test_single_class_is_nan_not_an_error() -> None:
    assert np.isnan(auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(auroc([0, 0], [0.1, 0.2]))
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
    # defined with positives only, as in sklearn
    assert average_precision([1, 1], [0.1, 0.2]) == pytest.approx(average_precision_score([1, 1], [0.1, 0.2]))
    assert f1_max([1, 1], [0.1, 0.2])[0] == 1.0


def test_area_to_limit_interpolates_inside_a_segment() -> None:
    # y = x on [0, 1]: area to 0.3 is 0.045 whatever the sampling
    assert area_to_limit(np.array([0.0, 0.2, 1.0]), np.array([0.0, 0.2, 1.0]), 0.3) == pytest.approx(0.045)
    # a step: y = 1 from x = 0.1 (vertical segment at 0.1): area = 0.2
    assert area_to_limit(np.array([0.0, 0.1, 0.1, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]), 0.3) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("labels", "scores"),
    [([0, 1, 2], [0.1, 0.2, 0.3]), ([0, 1], [0.1, float("nan")]), ([0, 1], [0.1]), ([0, 1], ["a", "b"])],
)
def test_bad_input_raises_input_error(labels: list, scores: list) -> None:
    with pytest.raises(InputError):
        auroc(labels, scores)
