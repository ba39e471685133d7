"""Global and local RX against SPy (``spectral.rx``) and a slow per-pixel reference written here."""

from __future__ import annotations

import numpy as np
import pytest

import ssmad
from ssmad.errors import ConfigError, InputError
from ssmad.models.rx import local_rx_scores, rx_scores

spectral = pytest.importorskip("spectral")


def _correlated_cube(h: int, w: int, b: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(b, b)) / np.sqrt(b) + np.eye(b)
    return rng.normal(size=(h, w, b)) @ mix + rng.normal(size=b) * 5


def _slow_local_rx(cube: np.ndarray, inner: int, outer: int, reg: float) -> np.ndarray:
    """Per-pixel dual-window RX: windows shifted at the borders to stay full size (SPy's behaviour)."""
    h, w, b = cube.shape
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            oi = min(max(i - outer // 2, 0), h - outer)
            oj = min(max(j - outer // 2, 0), w - outer)
            ii = min(max(i - inner // 2, 0), h - inner)
            ij = min(max(j - inner // 2, 0), w - inner)
            keep = np.zeros((h, w), bool)
            keep[oi : oi + outer, oj : oj + outer] = True
            keep[ii : ii + inner, ij : ij + inner] = False
            bg = cube[keep]
            assert bg.shape[0] == outer * outer - inner * inner
            mu = bg.mean(0)
            cov = np.cov(bg, rowvar=False)
            cov = cov + reg * np.trace(cov) / b * np.eye(b)
            d = cube[i, j] - mu
            out[i, j] = d @ np.linalg.solve(cov, d)
    return out


def test_global_rx_equals_spectral() -> None:
    cube = _correlated_cube(23, 31, 9)
    np.testing.assert_allclose(rx_scores(cube), spectral.rx(cube), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32, np.float64])
def test_rx_detector_any_dtype_equals_spectral(dtype: type) -> None:
    cube = _correlated_cube(17, 12, 7, seed=1)
    if np.issubdtype(dtype, np.integer):
        cube = np.round((cube - cube.min()) * 100).astype(dtype)  # non-negative so uint16 holds it
    else:
        cube = cube.astype(dtype)
    amap = ssmad.create_model("rx").fit_predict(cube)
    assert amap.shape == (17, 12) and amap.dtype == np.float64
    np.testing.assert_allclose(amap, spectral.rx(cube.astype(np.float64)), rtol=1e-6)


def test_rx_scores_another_cube_with_fitted_background() -> None:
    fit_cube, other = _correlated_cube(15, 15, 6, seed=2), _correlated_cube(9, 11, 6, seed=3)
    det = ssmad.create_model("rx").fit(fit_cube)
    expected = spectral.rx(other, background=spectral.calc_stats(fit_cube))
    np.testing.assert_allclose(det.decision_function(other), expected, rtol=1e-6)


def test_local_rx_equals_spectral_windowed() -> None:
    cube = _correlated_cube(14, 19, 5, seed=4)
    ours = local_rx_scores(cube, inner=3, outer=7, reg=0.0)
    theirs = spectral.rx(cube, window=(3, 7))  # SPy returns float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize(("h", "w", "b", "inner", "outer", "reg"), [(12, 17, 6, 3, 7, 0.0), (11, 9, 40, 3, 5, 1e-2)])
def test_local_rx_equals_slow_reference(h: int, w: int, b: int, inner: int, outer: int, reg: float) -> None:
    """Non-square scenes; the second case has fewer background pixels (16) than bands (40), so it needs the ridge."""
    cube = _correlated_cube(h, w, b, seed=5)
    expected = _slow_local_rx(cube, inner, outer, reg)
    np.testing.assert_allclose(local_rx_scores(cube, inner=inner, outer=outer, reg=reg), expected, rtol=1e-6)


def test_lrx_detector_int_dtype_and_defaults() -> None:
    cube = np.round(_correlated_cube(16, 18, 4, seed=6) * 50 + 1000).astype(np.uint16)
    det = ssmad.create_model("lrx", device="cpu")
    assert (det.config.inner, det.config.outer) == (5, 15)
    amap = det.fit_predict(cube)
    np.testing.assert_allclose(amap, _slow_local_rx(cube.astype(np.float64), 5, 15, 1e-3), rtol=1e-6)


def test_rx_finds_implanted_targets() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    cube = _correlated_cube(40, 40, 12, seed=7)
    gt = np.zeros((40, 40), bool)
    gt[rng.integers(0, 40, 12), rng.integers(0, 40, 12)] = True
    cube[gt] += rng.normal(size=12) * 6
    for name in ("rx", "lrx"):
        amap = ssmad.create_model(name, device="cpu").fit_predict(cube)
        assert roc_auc_score(gt.ravel(), amap.ravel()) > 0.95, name


@pytest.mark.parametrize(
    ("cube", "match"),
    [
        (np.ones((5, 5)), "3-D"),
        (np.ones((5, 5, 1)), "at least 2 bands"),
        (np.full((5, 5, 3), np.nan), "NaN or infinite"),
        (np.array([[[1.0, np.inf], [0.0, 1.0]]]), "NaN or infinite"),
        (np.ones((4, 4, 3), dtype=bool), "not a real number"),
        (np.array([[["a", "b"]]]), "not a real number"),
    ],
)
def test_bad_cubes_are_input_errors(cube: np.ndarray, match: str) -> None:
    for name in ("rx", "lrx"):
        with pytest.raises(InputError, match=match):
            ssmad.create_model(name).fit(cube)


def test_lrx_window_larger_than_scene() -> None:
    with pytest.raises(InputError, match="smaller than the local RX outer window"):
        ssmad.create_model("lrx").fit(np.random.default_rng(0).normal(size=(10, 40, 3)))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("lrx", {"inner": 4}), ("lrx", {"inner": 15, "outer": 15}), ("rx", {"reg": -1.0}), ("rx", {"foo": 1})],
)
def test_bad_config(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ssmad.create_model(name, **kwargs)


def test_save_load_roundtrip(tmp_path) -> None:
    cube, other = _correlated_cube(12, 12, 5, seed=8), _correlated_cube(6, 7, 5, seed=9)
    det = ssmad.create_model("rx", reg=0.01).fit(cube)
    det.save(tmp_path / "rx")
    with pytest.raises(InputError, match="already holds"):
        det.save(tmp_path / "rx")
    back = ssmad.load(tmp_path / "rx")
    assert back.config == det.config and back.threshold_ == det.threshold_
    np.testing.assert_array_equal(back.decision_function(other), det.decision_function(other))
    np.testing.assert_array_equal(back.predict(), det.decision_scores_ > det.threshold_)


def test_threshold_is_quantile_of_scores() -> None:
    cube = _correlated_cube(20, 20, 4, seed=10)
    det = ssmad.create_model("rx", threshold_quantile=0.9).fit(cube)
    assert det.predict().mean() == pytest.approx(0.1, abs=0.01)
    (pred,) = det.predict_maps()
    assert pred.pred_score == det.decision_scores_.max() and pred.pred_label
