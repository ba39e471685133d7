"""Synthetic ABU-like hyperspectral scenes and the shipped spectra subset."""

from __future__ import annotations

import csv
import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from ssmad.data.synthetic import (
    MATERIALS,
    load_spectral_library,
    make_hsi_scene,
    make_hsi_scene_parts,
    write_abu_mat,
    write_hsi_scenes,
)
from ssmad.errors import InputError


def global_rx(cube: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of every pixel to the global mean under the global covariance."""
    x = cube.reshape(-1, cube.shape[-1]).astype(np.float64)
    d = x - x.mean(axis=0)
    # One BLAS thread: multi-threaded OpenBLAS spins for seconds on a busy 2-core machine for these small matrices.
    with threadpool_limits(1):
        cov = d.T @ d / (len(x) - 1)
        return np.einsum("ij,ij->i", d @ np.linalg.pinv(cov), d)


def test_shapes_dtypes_and_wavelengths() -> None:
    cube, gt, wl = make_hsi_scene(30, 20, seed=1)
    assert cube.shape == (30, 20, 180) and cube.dtype == np.float32
    assert gt.shape == (30, 20) and gt.dtype == np.uint8 and set(np.unique(gt).tolist()) == {0, 1}
    assert wl.shape == (180,) and wl[0] == 400 and wl[-1] == 2450 and np.all(np.diff(wl) > 0)
    assert np.isfinite(cube).all() and 0.0 < float(np.median(cube)) < 1.0
    cube, gt, wl = make_hsi_scene(30, 20, bands=41, seed=1)
    assert cube.shape == (30, 20, 41)
    np.testing.assert_allclose(wl, np.linspace(400, 2450, 41), rtol=1e-6)


def test_resampling_interpolates_the_library_spectra() -> None:
    lib = load_spectral_library()
    new = lib.resample(25)
    for i in (0, 100, 300):
        # Independent oracle: piecewise-linear interpolation by hand.
        for j in (0, 7, 24):
            x = float(new.wavelengths[j])
            k = min(int(np.searchsorted(lib.wavelengths, x, side="right")) - 1, len(lib.wavelengths) - 2)
            x0, x1 = lib.wavelengths[k], lib.wavelengths[k + 1]
            expect = lib.spectra[i, k] + (x - x0) / (x1 - x0) * (lib.spectra[i, k + 1] - lib.spectra[i, k])
            assert new.spectra[i, j] == pytest.approx(expect, abs=1e-6)


def test_same_seed_same_arrays_and_mat_bytes(tmp_path: Path) -> None:
    a = make_hsi_scene(40, 30, bands=20, seed=5)
    b = make_hsi_scene(40, 30, bands=20, seed=5)
    c = make_hsi_scene(40, 30, bands=20, seed=6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.cube, c.cube)
    write_abu_mat(tmp_path / "a.mat", a.cube, a.gt, a.wavelengths)
    write_abu_mat(tmp_path / "b.mat", b.cube, b.gt, b.wavelengths)
    write_abu_mat(tmp_path / "c.mat", c.cube, c.gt, c.wavelengths)
    assert (tmp_path / "a.mat").read_bytes() == (tmp_path / "b.mat").read_bytes()
    assert (tmp_path / "a.mat").read_bytes() != (tmp_path / "c.mat").read_bytes()


@pytest.mark.parametrize(("shape", "fraction"), [((60, 50), 0.01), ((100, 100), 0.0056), ((40, 40), 0.03)])
def test_target_fraction_is_exact_and_targets_are_separate_small_blobs(shape: tuple[int, int], fraction: float) -> None:
    parts = make_hsi_scene_parts(*shape, bands=10, target_fraction=fraction, seed=2)
    assert int(parts.gt.sum()) == round(fraction * shape[0] * shape[1])
    labels, n = ndimage.label(parts.gt, structure=np.ones((3, 3)))  # 8-connected components
    assert n == len(parts.target_materials)
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.min() >= 1 and sizes.max() <= 12
    # Every 4-connected blob is one target: each component is also 4-connected.
    assert ndimage.label(parts.gt)[1] == n


def test_n_targets_and_abundance_range() -> None:
    parts = make_hsi_scene_parts(50, 50, bands=8, n_targets=5, target_abundance=(0.2, 0.4), seed=3)
    assert ndimage.label(parts.gt, structure=np.ones((3, 3)))[1] == 5
    a = parts.target_abundance[parts.gt > 0]
    assert a.min() >= 0.2 and a.max() <= 0.4
    assert np.all(parts.target_abundance[parts.gt == 0] == 0)
    assert set(parts.target_materials) <= {"metal", "paint"}


def test_background_is_a_mixture_of_its_endmembers_and_targets_are_not() -> None:
    """Noise- and illumination-free: background pixels lie in the endmembers' span with sum-to-one weights."""
    parts = make_hsi_scene_parts(40, 40, noise_sigma=0.0, illumination=0.0, target_abundance=(0.1, 0.3), seed=4)
    e = parts.background_endmembers.astype(np.float64).T  # (B, K)
    x = parts.cube.reshape(-1, e.shape[0]).astype(np.float64).T  # (B, N)
    coef, *_ = np.linalg.lstsq(e, x, rcond=None)
    resid = np.linalg.norm(e @ coef - x, axis=0) / np.linalg.norm(x, axis=0)
    bg = parts.gt.ravel() == 0
    assert resid[bg].max() < 1e-5
    np.testing.assert_allclose(coef[:, bg].sum(axis=0), 1.0, atol=1e-4)
    assert coef[:, bg].min() > -1e-4
    assert resid[~bg].min() > 1e-3  # every target pixel leaves the background subspace


def test_target_pixels_differ_spectrally_from_their_surroundings() -> None:
    cube, gt, _ = make_hsi_scene(60, 60, bands=30, target_abundance=(0.3, 0.5), seed=0)
    local = ndimage.median_filter(cube, size=(7, 7, 1))
    dev = np.linalg.norm(cube - local, axis=-1)
    assert np.median(dev[gt > 0]) > 2.0 * np.median(dev[gt == 0])


def test_global_rx_leaves_room_and_difficulty_is_controllable() -> None:
    aucs = [
        roc_auc_score(gt.ravel(), global_rx(cube)) for cube, gt, _ in (make_hsi_scene(64, 64, seed=s) for s in range(3))
    ]
    assert 0.6 < float(np.mean(aucs)) < 0.99
    easy = make_hsi_scene(64, 64, target_abundance=(0.6, 0.9), seed=0)
    hard = make_hsi_scene(64, 64, target_abundance=(0.01, 0.03), noise_sigma=0.02, seed=0)
    auc_easy = roc_auc_score(easy.gt.ravel(), global_rx(easy.cube))
    auc_hard = roc_auc_score(hard.gt.ravel(), global_rx(hard.cube))
    assert auc_easy > 0.97
    assert auc_hard < auc_easy - 0.15


def test_shipped_asset_loads_and_is_attributed() -> None:
    assets = resources.files("ssmad.data").joinpath("assets")
    npz = assets.joinpath("spectra.npz")
    assert len(npz.read_bytes()) < 1_000_000
    text = assets.joinpath("SPECTRA_LICENSE.txt").read_text()
    for needle in (
        "earthlib",
        "MIT License",
        "Copyright (c) 2023 Christopher Anderson",
        "Permission is hereby granted",
    ):
        assert needle in text
    lib = load_spectral_library()
    n = lib.spectra.shape[0]
    assert lib.spectra.shape == (n, 180) and 100 <= n <= 1000 and lib.spectra.dtype == np.float32
    assert np.isfinite(lib.spectra).all() and lib.spectra.min() > 0 and lib.spectra.max() < 1.1
    assert set(lib.materials.tolist()) == set(MATERIALS)
    for material, level3 in zip(lib.materials, lib.levels[:, 2], strict=True):
        assert level3 in MATERIALS[material]
    with np.load(resources.files("ssmad.data").joinpath("assets", "spectra.npz").open("rb")) as z:
        assert len(np.unique(z["earthlib_index"])) == n  # distinct rows of earthlib's library


@pytest.mark.skipif(importlib.util.find_spec("earthlib") is None, reason="earthlib is not installed")
def test_shipped_asset_matches_earthlib() -> None:
    """Compare with earthlib's own files (read directly: its runtime dependencies need not be installed)."""
    spec = importlib.util.find_spec("earthlib")
    assert spec is not None and spec.origin is not None
    data = Path(spec.origin).parent / "data"
    full = np.fromfile(data / "spectra.sli", dtype="<f4").reshape(7261, 180)
    with (data / "spectra.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["NAME"] for r in rows]
    with np.load(resources.files("ssmad.data").joinpath("assets", "spectra.npz").open("rb")) as z:
        idx = z["earthlib_index"]
        np.testing.assert_array_equal(z["spectra"], full[idx])
        assert z["name"].tolist() == [names[i] for i in idx]
        assert z["levels"][:, 2].tolist() == [rows[i]["LEVEL_3"] for i in idx]


def test_write_abu_mat_round_trip(tmp_path: Path) -> None:
    cube, gt, wl = make_hsi_scene(20, 16, bands=12, seed=0)
    path = write_abu_mat(tmp_path / "scene.mat", cube, gt, wl)
    with path.open("rb") as fh:
        header = fh.read(116)
    assert header.startswith(b"MATLAB 5.0 MAT-file")
    m = scipy.io.loadmat(path)
    np.testing.assert_array_equal(m["data"], cube)
    np.testing.assert_array_equal(m["map"], gt)
    np.testing.assert_array_equal(m["wavelength"].ravel(), wl.astype(np.float64))
    with pytest.raises(InputError, match="already exists"):
        write_abu_mat(path, cube, gt)
    with pytest.raises(InputError, match="matching"):
        write_abu_mat(tmp_path / "bad.mat", cube, gt[:-1])
    from ssmad.data.hsi import load_cube

    loaded = load_cube(path)
    np.testing.assert_array_equal(loaded.cube, cube)
    np.testing.assert_array_equal(loaded.gt, gt)


def test_write_hsi_scenes(tmp_path: Path) -> None:
    summary = write_hsi_scenes(tmp_path / "hsi", n_scenes=2, seed=9, h=24, w=20, bands=6)
    assert summary["files"] == ["synthetic-000.mat", "synthetic-001.mat"]
    for i, name in enumerate(summary["files"]):
        m = scipy.io.loadmat(tmp_path / "hsi" / name)
        expect = make_hsi_scene(24, 20, bands=6, seed=(9, i))
        np.testing.assert_array_equal(m["data"], expect.cube)
        assert int(m["map"].sum()) == summary["scenes"][i]["anomaly_pixels"]
    with pytest.raises(InputError, match="not empty"):
        write_hsi_scenes(tmp_path / "hsi", n_scenes=1, h=24, w=20, bands=6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h": 4}, "too small"),
        ({"bands": 1}, "bands"),
        ({"target_abundance": (0.5, 0.2)}, "target_abundance"),
        ({"target_fraction": 0.6}, "target_fraction"),
        ({"h": 12, "w": 12, "target_fraction": 0.4}, "cannot place"),
        ({"background_materials": ("lava",)}, "lava"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_scene_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        make_hsi_scene(**{"h": 30, "w": 30, "bands": 8, **kwargs})
