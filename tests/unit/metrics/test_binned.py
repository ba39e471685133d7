"""Streaming binned pixel metrics: error bounds vs exact, accuracy, exact merges, constant memory, torch input."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from ssmad.errors import InputError
from ssmad.metrics import BinnedPixelMetrics, evaluate
from ssmad.metrics.binned import DEFAULT_BINS

from ._cases import realistic_batch

KEYS = ("pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO", "pixel_IoUMax")


def _exact(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    labels = masks.any(axis=(1, 2))
    r = evaluate(maps.max(axis=(1, 2)), labels, maps, masks)
    return {k: r[k] for k in KEYS}


def _fill(maps: np.ndarray, masks: np.ndarray, batch: int = 8, n_bins: int = DEFAULT_BINS) -> BinnedPixelMetrics:
    acc = BinnedPixelMetrics(n_bins)
    for i in range(0, len(maps), batch):
        acc.update(maps[i : i + batch], masks[i : i + batch])
    return acc


@pytest.mark.parametrize(("seed", "n_bins"), [(0, 16), (1, 64), (2, 1000), (3, 2**15)])
def test_every_metric_lies_within_its_error_bound(seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    maps, masks = realistic_batch(rng, 12, 48)
    masks[0, :5, :5] = True  # at least one region
    if seed % 2:
        maps = np.round(maps * 50) / 50  # ties inside bins and across classes
    acc = _fill(maps, masks, batch=5, n_bins=n_bins)
    got, bound, exact = acc.compute(), acc.error_bounds(), _exact(maps, masks)
    for k in KEYS:
        assert abs(got[k] - exact[k]) <= bound[k] + 1e-12, (k, got[k], exact[k], bound[k])
    assert got["pixel_F1Max"] <= exact["pixel_F1Max"] + 1e-12  # binned thresholds are a subset of the exact ones
    assert got["pixel_IoUMax"] <= exact["pixel_IoUMax"] + 1e-12


def test_bounds_shrink_with_more_bins() -> None:
    maps, masks = realistic_batch(np.random.default_rng(4), 10, 64)
    coarse = _fill(maps, masks, n_bins=32).error_bounds()
    fine = _fill(maps, masks, n_bins=4096).error_bounds()
    for k in ("pixel_AUROC", "pixel_AP", "pixel_AUPRO"):
        assert fine[k] < coarse[k] / 20


def test_auroc_and_ap_within_1e3_of_exact_fast() -> None:
    maps, masks = realistic_batch(np.random.default_rng(5), 40, 128)
    got = _fill(maps, masks, batch=16).compute()
    y, s = masks.ravel(), maps.ravel()
    assert abs(got["pixel_AUROC"] - roc_auc_score(y, s)) < 1e-3
    assert abs(got["pixel_AP"] - average_precision_score(y, s)) < 1e-3
    assert abs(got["pixel_AUPRO"] - _exact(maps, masks)["pixel_AUPRO"]) < 1e-3


@pytest.mark.slow
def test_auroc_and_ap_within_1e3_of_exact_on_200_maps_of_256() -> None:
    rng = np.random.default_rng(6)
    parts = [realistic_batch(rng, 20, 256) for _ in range(10)]
    acc = BinnedPixelMetrics()
    for m, k in parts:
        acc.update(m, k)
    maps = np.concatenate([p[0] for p in parts])
    masks = np.concatenate([p[1] for p in parts])
    got = acc.compute()
    assert abs(got["pixel_AUROC"] - roc_auc_score(masks.ravel(), maps.ravel())) < 1e-3
    assert abs(got["pixel_AP"] - average_precision_score(masks.ravel(), maps.ravel())) < 1e-3
    exact = _exact(maps, masks)
    for k in KEYS:
        assert abs(got[k] - exact[k]) < 1e-3


def test_merge_of_two_halves_equals_one_pass_in_any_order() -> None:
    rng = np.random.default_rng(7)
    maps, masks = realistic_batch(rng, 16, 40)
    maps[8:] = maps[8:] * 5.0 - 1.0  # the second half widens the range: the grid must coarsen exactly
    one = _fill(maps, masks, batch=4)
    reverse = _fill(maps[::-1], masks[::-1], batch=3)
    a, b = _fill(maps[:8], masks[:8]), _fill(maps[8:], masks[8:])
    merged_ab = pickle.loads(pickle.dumps(a)).merge(b)
    merged_ba = BinnedPixelMetrics.from_state_dict(b.state_dict()).merge(a)
    for other in (reverse, merged_ab, merged_ba):
        assert (other.exponent, other.offset, other.n_regions, other.n_images) == (
            one.exponent,
            one.offset,
            one.n_regions,
            one.n_images,
        )
        np.testing.assert_array_equal(other.neg, one.neg)
        np.testing.assert_array_equal(other.pos, one.pos)
        np.testing.assert_allclose(other.pro, one.pro, rtol=1e-12, atol=1e-15)
        for k in KEYS:
            assert other.compute()[k] == pytest.approx(one.compute()[k], abs=1e-12)


def test_merge_with_an_empty_accumulator_and_settings_mismatch() -> None:
    maps, masks = realistic_batch(np.random.default_rng(8), 4, 32)
    acc = _fill(maps, masks)
    before = acc.compute()
    assert acc.merge(BinnedPixelMetrics()).compute() == before
    assert BinnedPixelMetrics().merge(acc).compute() == before
    with pytest.raises(InputError, match="n_bins"):
        acc.merge(BinnedPixelMetrics(n_bins=64))


def _peak_bytes(n_maps: int) -> int:
    rng = np.random.default_rng(9)
    acc = BinnedPixelMetrics()
    batches = [realistic_batch(rng, 10, 96) for _ in range(2)]  # reuse two batches: generation cost not measured
    tracemalloc.start()
    tracemalloc.reset_peak()
    for i in range(n_maps // 10):
        acc.update(*batches[i % 2])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert acc.n_images == n_maps
    return peak


def test_peak_memory_does_not_grow_with_the_number_of_maps() -> None:
    p50, p200 = _peak_bytes(50), _peak_bytes(200)
    batch_bytes = 10 * 96 * 96 * 8  # one batch as float64
    assert p200 <= p50 + batch_bytes // 4, (p50, p200)
    assert p200 < 200 * 96 * 96 * 4  # far below keeping the maps (float32)


def test_torch_tensors_give_the_numpy_result() -> None:
    maps, masks = realistic_batch(np.random.default_rng(10), 6, 32)
    ref = _fill(maps, masks, batch=3)
    acc = BinnedPixelMetrics()
    for i in range(0, 6, 3):
        acc.update(torch.from_numpy(maps[i : i + 3]), torch.from_numpy(masks[i : i + 3]).to(torch.uint8))
    np.testing.assert_array_equal(acc.neg, ref.neg)
    np.testing.assert_array_equal(acc.pos, ref.pos)
    np.testing.assert_allclose(acc.pro, ref.pro, rtol=1e-12)
    assert acc.compute() == pytest.approx(ref.compute(), abs=1e-12)


@pytest.mark.gpu
def test_cuda_tensors_give_the_numpy_result() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    maps, masks = realistic_batch(np.random.default_rng(11), 8, 64)
    ref = _fill(maps, masks, batch=4)
    acc = BinnedPixelMetrics()
    for i in range(0, 8, 4):
        acc.update(torch.from_numpy(maps[i : i + 4]).cuda(), torch.from_numpy(masks[i : i + 4]).cuda())
    np.testing.assert_array_equal(acc.neg, ref.neg)
    np.testing.assert_array_equal(acc.pos, ref.pos)
    assert acc.compute() == pytest.approx(ref.compute(), abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, -3.0, 1000.0])
def test_any_score_range_without_configuration(shift: float) -> None:
    # constant first batch (zero span), then real maps far from zero: the grid adapts, results stay accurate
    maps, masks = realistic_batch(np.random.default_rng(12), 10, 48)
    maps = maps.astype(np.float64) + shift
    acc = BinnedPixelMetrics()
    acc.update(np.full((2, 48, 48), shift + 0.3), np.zeros((2, 48, 48), bool))
    for i in range(0, 10, 5):
        acc.update(maps[i : i + 5], masks[i : i + 5])
    all_maps = np.concatenate([np.full((2, 48, 48), shift + 0.3), maps])
    all_masks = np.concatenate([np.zeros((2, 48, 48), bool), masks])
    got, bound, exact = acc.compute(), acc.error_bounds(), _exact(all_maps, all_masks)
    for k in KEYS:
        assert abs(got[k] - exact[k]) <= bound[k] + 1e-12
    assert abs(got["pixel_AUROC"] - exact["pixel_AUROC"]) < 1e-4


def test_curves_for_plots() -> None:
    maps, masks = realistic_batch(np.random.default_rng(13), 8, 48)
    masks[0, :4, :4] = True
    acc = _fill(maps, masks)
    roc = acc.roc_curve(max_points=100)
    assert roc["fpr"].size <= 100 and roc["fpr"][0] == 0 and roc["fpr"][-1] == 1
    pro = acc.pro_curve()
    assert pro["fpr"][-1] == pytest.approx(0.3) and np.all(np.diff(pro["fpr"]) >= 0)
    assert pro["aupro"] == acc.compute()["pixel_AUPRO"]


def test_single_class_gives_nan_and_bad_input_raises() -> None:
    acc = BinnedPixelMetrics()
    acc.update(np.random.default_rng(0).random((2, 8, 8)), np.zeros((2, 8, 8), bool))
    assert all(np.isnan(v) for v in acc.compute().values())
    with pytest.raises(InputError, match="differ in shape"):
        acc.update(np.zeros((2, 8, 8)), np.zeros((2, 8, 9), bool))
    with pytest.raises(InputError, match="NaN"):
        acc.update(np.full((1, 8, 8), np.nan), np.zeros((1, 8, 8), bool))
    with pytest.raises(InputError, match="NaN"):
        acc.update(torch.full((1, 8, 8), float("inf")), torch.zeros((1, 8, 8), dtype=torch.bool))
    with pytest.raises(InputError):
        BinnedPixelMetrics(n_bins=4)
