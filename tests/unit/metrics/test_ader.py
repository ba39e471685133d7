"""ADer definitions (spec A.10): hand cases and a literal, loop-by-loop restatement of the recipe as oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import regionprops
from sklearn.metrics import auc

from ssmad.metrics import ader_aupro, ader_f1_iou_max, evaluate

EPS = 1e-8


def literal_f1_iou(maps: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """Spec A.10 as written: class min-max normalisation, 21 thresholds, strict '>', pooled counts, eps 1e-8."""
    norm = (maps - maps.min()) / (maps.max() - maps.min())
    f1s, ious = [], []
    for t in np.arange(0.0, 1.0 + 1e-3, 0.05):
        pred = norm > t
        inter = np.logical_and(masks, pred).sum()
        union = np.logical_or(masks, pred).sum()
        p = inter / (pred.sum() + EPS)
        r = inter / (masks.sum() + EPS)
        f1s.append(2 * p * r / (p + r + EPS))
        ious.append(inter / (union + EPS))
    return float(max(f1s)), float(max(ious))


def literal_aupro(maps: np.ndarray, masks: np.ndarray, steps: int = 100, limit: float = 0.3) -> float:
    """Spec A.10 as written: linear thresholds on raw maps, per-region overlap, FPR filter, rescale, sklearn auc."""
    lo, hi = maps.min(), maps.max()
    pros, fprs = [], []
    for th in np.arange(lo, hi, (hi - lo) / steps):
        binary = maps > th
        overlaps = []
        for b, m in zip(binary, masks, strict=True):
            for region in regionprops(sk_label(m)):
                overlaps.append(b[region.coords[:, 0], region.coords[:, 1]].sum() / region.area)
        inverse = 1 - masks.astype(int)
        fprs.append(np.logical_and(inverse, binary).sum() / inverse.sum())
        pros.append(np.mean(overlaps))
    fprs_a, pros_a = np.array(fprs), np.array(pros)
    keep = fprs_a < limit
    x = fprs_a[keep]
    x = (x - x.min()) / (x.max() - x.min())
    return float(auc(x, pros_a[keep]))


def test_f1_grid_misses_a_gap_between_two_thresholds() -> None:
    # normal 0.51 and anomalous 0.54 fall between grid points 0.50 and 0.55: ADer cannot separate them.
    maps = np.array([[[0.0, 0.51, 0.54, 1.0]]])
    masks = np.array([[[False, False, True, True]]])
    f1, iou = ader_f1_iou_max(maps, masks)
    p, r = 2 / (3 + EPS), 2 / (2 + EPS)  # best grid threshold (<= 0.5): 3 predicted, 2 correct
    assert f1 == pytest.approx(2 * p * r / (p + r + EPS), abs=1e-12)
    assert iou == pytest.approx(2 / (3 + EPS), abs=1e-12)
    assert evaluate([0, 1], [0, 1], np.concatenate([maps, maps]), np.concatenate([masks, masks]))[
        "pixel_F1Max"
    ] == pytest.approx(1.0)  # the exact F1-max separates them


def test_f1_threshold_is_strict() -> None:
    # an anomalous pixel exactly at a grid value (0.5 after normalisation) is not predicted at t = 0.5
    maps = np.array([[[0.0, 0.5, 0.5, 1.0]]])
    masks = np.array([[[False, False, True, False]]])
    f1, _ = ader_f1_iou_max(maps, masks)
    literal = literal_f1_iou(maps, masks)[0]
    assert f1 == pytest.approx(literal, abs=1e-12)
    # best is t in [0, 0.45]: predicted {0.5, 0.5, 1.0}, 1 correct → P = 1/3, R = 1
    p, r = 1 / (3 + EPS), 1 / (1 + EPS)
    assert f1 == pytest.approx(2 * p * r / (p + r + EPS), abs=1e-12)


def test_aupro_hand_case_with_four_thresholds() -> None:
    # thresholds 0, .25, .5, .75; region A = (1.0, 0.6), region B = (0.3); 7 normals incl. 0.55 and 0.2.
    # (FPR, PRO) = (2/7, 1), (1/7, 1), (1/7, .5), (0, .25); rescaled FPR 1, .5, .5, 0 → area .1875 + .5
    row = np.array([1.0, 0.6, 0.0, 0.3, 0.0, 0.0, 0.0, 0.55, 0.2, 0.0])
    gt = np.zeros(10, bool)
    gt[[0, 1, 3]] = True
    maps, masks = row[None, None], gt[None, None]
    assert ader_aupro(maps, masks, steps=4) == pytest.approx(0.6875, abs=1e-12)
    assert literal_aupro(maps, masks, steps=4) == pytest.approx(0.6875, abs=1e-12)


def _random_case(seed: int, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = ndimage.gaussian_filter(rng.normal(size=(5, 18, 22)), (0, 1.3, 1.3)) > 0.3
    masks[0] = False
    maps = rng.random(masks.shape) + 0.8 * ndimage.gaussian_filter(masks.astype(float), (0, 1.5, 1.5))
    if seed % 2:
        maps = np.round(maps * 6) / 6
    return maps.astype(dtype), masks


@pytest.mark.parametrize("seed", range(4))
def test_f1_iou_equal_the_literal_recipe(seed: int) -> None:
    maps, masks = _random_case(seed)
    f1, iou = ader_f1_iou_max(maps, masks)
    f1_ref, iou_ref = literal_f1_iou(maps, masks)
    assert f1 == pytest.approx(f1_ref, abs=1e-12)
    assert iou == pytest.approx(iou_ref, abs=1e-12)


@pytest.mark.parametrize(("seed", "steps"), [(0, 100), (1, 100), (2, 37), (3, 200)])
def test_aupro_equals_the_literal_recipe(seed: int, steps: int) -> None:
    maps, masks = _random_case(seed)
    assert ader_aupro(maps, masks, steps=steps) == pytest.approx(literal_aupro(maps, masks, steps), abs=1e-12)


def test_float32_maps_follow_the_same_comparisons() -> None:
    maps, masks = _random_case(5, np.float32)
    assert ader_aupro(maps, masks) == pytest.approx(literal_aupro(maps, masks), abs=1e-12)
    assert ader_f1_iou_max(maps, masks) == pytest.approx(literal_f1_iou(maps, masks), abs=1e-12)


def test_evaluate_ader_normalises_per_class_and_keeps_exact_image_and_auroc() -> None:
    m1, k1 = _random_case(0)
    m2, k2 = _random_case(1)
    maps = np.concatenate([m1, 3.0 * m2 + 1.0])  # the second class lives on another scale
    masks = np.concatenate([k1, k2])
    labels = masks.any(axis=(1, 2)).astype(int)
    scores = maps.max(axis=(1, 2))
    cats = ["a"] * 5 + ["b"] * 5
    ader = evaluate(scores, labels, maps, masks, cats, definition="ader")
    exact = evaluate(scores, labels, maps, masks, cats, definition="exact")
    assert ader["definition"] == "ader" and ader["ader_aupro_steps"] == 100
    for c, (m, k) in {"a": (m1, k1), "b": (3.0 * m2 + 1.0, k2)}.items():
        got = ader["per_category"][c]
        f1, iou = literal_f1_iou(m, k)
        assert got["pixel_F1Max"] == pytest.approx(f1, abs=1e-12)
        assert got["pixel_IoUMax"] == pytest.approx(iou, abs=1e-12)
        assert got["pixel_AUPRO"] == pytest.approx(literal_aupro(m, k), abs=1e-12)
        for key in ("image_AUROC", "image_AP", "image_F1Max", "pixel_AUROC", "pixel_AP"):
            assert got[key] == exact["per_category"][c][key]
    seven = ["image_AUROC", "image_AP", "image_F1Max", "pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO"]
    assert ader["mAD"] == pytest.approx(np.mean([ader[k] for k in seven]), abs=1e-12)
