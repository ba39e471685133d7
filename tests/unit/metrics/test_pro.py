"""Exact AUPRO: hand-computed cases, 8-connectivity, and an independent slow implementation (loop over thresholds)."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as sk_label

from ssmad.errors import InputError
from ssmad.metrics import aupro, label_regions, pro_curve


def slow_aupro(maps: np.ndarray, masks: np.ndarray, limit: float = 0.3) -> float:
    """Textbook PRO: for every distinct score, binarise, label regions per image with skimage, average overlaps."""
    regions = []
    for i, m in enumerate(masks):
        lab = sk_label(m, connectivity=2)
        regions += [(i, lab == r) for r in range(1, lab.max() + 1)]
    normal = ~masks
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        ys.append(float(np.mean([pred[i][r].mean() for i, r in regions])))
        xs.append(float((pred & normal).sum() / normal.sum()))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:  # the segment crosses the limit: cut it there
            y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_lim) / 2
    return area / limit


def test_two_regions_one_never_detected_below_the_limit() -> None:
    # region A: 2 px (0.9, 0.5); region B: 1 px at 0.05, below every normal pixel → undetected until FPR = 1.
    maps = np.zeros((4, 4))
    masks = np.zeros((4, 4), bool)
    masks[0, 0] = masks[0, 1] = True  # A
    masks[3, 3] = True  # B (not touching A)
    maps[0, 0], maps[0, 1], maps[3, 3] = 0.9, 0.5, 0.05
    normals = [(1, 0), (1, 1), (1, 2), (1, 3)]
    for (r, c), v in zip(normals, [0.8, 0.6, 0.4, 0.3], strict=True):
        maps[r, c] = v
    maps[~masks & (maps == 0)] = 0.1
    # PRO = 0.25 up to FPR 2/13, then 0.5 (A complete, B missing): area = 2/13·0.25 + (0.3 − 2/13)·0.5
    expected = (2 / 13 * 0.25 + (0.3 - 2 / 13) * 0.5) / 0.3
    assert aupro(maps[None], masks[None]) == pytest.approx(expected, abs=1e-12)
    assert slow_aupro(maps[None], masks[None]) == pytest.approx(expected, abs=1e-12)


def test_limit_falls_inside_a_tied_segment() -> None:
    # one region of 3 px (0.9, 0.4, 0.1); 10 normals (0.8, 0.7, 0.4, 0.4, six at 0): the tie at 0.4 jumps from
    # (FPR 0.2, PRO 1/3) to (0.4, 2/3), crossing 0.3 at PRO 1/2 → area 0.2/3 + 0.1·(1/3 + 1/2)/2 = 13/120.
    maps = np.array([[0.9, 0.4, 0.1, 0.8, 0.7, 0.4, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    masks = np.zeros_like(maps, dtype=bool)
    masks[0, :3] = True
    assert aupro(maps[None], masks[None]) == pytest.approx(13 / 36, abs=1e-12)
    curve = pro_curve(maps[None], masks[None])
    assert curve["fpr"][-1] == pytest.approx(0.3)
    assert curve["pro"][-1] == pytest.approx(0.5)
    assert curve["aupro"] == pytest.approx(13 / 36, abs=1e-12)


def test_three_regions_of_different_sizes_limit_inside_a_rising_segment() -> None:
    # one row: A = 4 px (0.9, 0.9, 0.5, 0.4), B = 2 px (0.8, 0.3), C = 1 px (0.05, below every normal pixel);
    # 8 normals (0.85, 0.6, 0.4, five at 0.1). (FPR, PRO) with PRO the mean over the 3 regions:
    # (0, 1/6) → (1/8, 1/6) → (1/8, 1/3) → (1/4, 1/3) → (1/4, 5/12) → (3/8, 1/2) [0.4 is tied: A's last pixel and
    # a normal]; the limit 0.3 falls inside the last, rising segment, at PRO 5/12 + 0.4 · 1/12 = 9/20.
    row = [0.9, 0.9, 0.5, 0.4, 0.85, 0.8, 0.3, 0.6, 0.05, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1]
    gt = [1, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    maps, masks = np.array([[row]]), np.array([[gt]], bool)
    area = F(1, 8) * F(1, 6) + F(1, 8) * F(1, 3) + F(1, 20) * (F(5, 12) + F(9, 20)) / 2
    expected = float(area / F(3, 10))
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-12)
    assert slow_aupro(maps, masks) == pytest.approx(expected, abs=1e-12)
    curve = pro_curve(maps, masks)
    assert curve["pro"][-1] == pytest.approx(9 / 20, abs=1e-12)
    # C is never detected below the limit: the same maps without C average over 2 regions instead
    without_c = masks.copy()
    without_c[0, 0, 8] = False
    maps_c = maps.copy()
    maps_c[0, 0, 8] = 0.0  # now a normal pixel below every threshold used up to FPR 3/8 (9 normals)
    assert aupro(maps_c, without_c) > aupro(maps, masks)


def test_regions_are_8_connected_within_an_image_only() -> None:
    # (0,0),(0,1) and the diagonal neighbour (1,2): one region of 3 px with 8-connectivity (two with 4).
    masks = np.zeros((4, 4), bool)
    masks[0, 0] = masks[0, 1] = masks[1, 2] = True
    maps = np.zeros((4, 4))
    maps[1, 2], maps[0, 0], maps[0, 1] = 0.9, 0.05, 0.05
    maps[3, 3] = 0.5
    # 8-connected: PRO 1/3 until FPR 1/13, then 1 → AUPRO = (1/13·1/3 + (0.3 − 1/13)) / 0.3
    expected8 = (1 / 13 / 3 + (0.3 - 1 / 13)) / 0.3
    assert aupro(maps[None], masks[None]) == pytest.approx(expected8, abs=1e-12)
    # the same region in two stacked images is two regions (no connection across the stack)
    labels, n = label_regions(np.stack([masks, masks]))
    assert n == 2 and set(np.unique(labels[0])) == {0, 1} and set(np.unique(labels[1])) == {0, 2}


def test_label_regions_matches_skimage_per_image() -> None:
    rng = np.random.default_rng(0)
    masks = ndimage.gaussian_filter(rng.normal(size=(5, 40, 40)), (0, 1.5, 1.5)) > 0.25
    labels, n = label_regions(masks)
    assert n == sum(int(sk_label(m, connectivity=2).max()) for m in masks)
    for m, lab in zip(masks, labels, strict=True):
        ref = sk_label(m, connectivity=2)
        # same partition: a bijection between our ids and skimage's on the mask
        pairs = set(zip(lab[m].tolist(), ref[m].tolist(), strict=True))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, h, w = 6, 20, 24
    masks = ndimage.gaussian_filter(rng.normal(size=(n, h, w)), (0, 1.2, 1.2)) > 0.35
    masks[0] = False  # a normal image
    maps = rng.random((n, h, w)) + 0.6 * masks + 0.3 * ndimage.gaussian_filter(masks.astype(float), (0, 2, 2))
    if seed % 2:
        maps = np.round(maps * 8) / 8  # many ties, across classes too
    return maps, masks


@pytest.mark.parametrize("seed", range(6))
def test_equals_independent_slow_implementation(seed: int) -> None:
    maps, masks = _random_case(seed)
    assert aupro(maps, masks) == pytest.approx(slow_aupro(maps, masks), abs=1e-10)


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_other_limits(limit: float) -> None:
    maps, masks = _random_case(1)
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(slow_aupro(maps, masks, limit), abs=1e-10)


def test_perfect_and_worst_maps() -> None:
    _, masks = _random_case(2)
    assert aupro(masks.astype(float), masks) == pytest.approx(1.0)
    assert aupro((~masks).astype(float), masks) == pytest.approx(0.0)


def test_undefined_without_regions_is_nan(caplog: pytest.LogCaptureFixture) -> None:
    maps = np.random.default_rng(0).random((2, 8, 8))
    assert np.isnan(aupro(maps, np.zeros((2, 8, 8), bool)))
    assert "undefined" in caplog.text
    assert pro_curve(maps, np.zeros((2, 8, 8), bool))["fpr"].size == 0


def test_bad_input() -> None:
    maps = np.zeros((2, 8, 8))
    with pytest.raises(InputError, match="differ in shape"):
        aupro(maps, np.zeros((2, 8, 9), bool))
    with pytest.raises(InputError, match="soft values"):
        aupro(maps, np.full((2, 8, 8), 0.5))
    with pytest.raises(InputError, match="fpr_limit"):
        aupro(maps, np.zeros((2, 8, 8), bool), fpr_limit=0.0)
