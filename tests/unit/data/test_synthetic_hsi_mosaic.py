"""The urban mosaic background of the synthetic hyperspectral scenes, and the default background left unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import nnls

from ssmad.data.synthetic import make_hsi_scene, make_hsi_scene_parts
from ssmad.data.synthetic.hsi import BACKGROUND_MATERIALS, MOSAIC_MATERIALS, MOSAIC_SUPERSAMPLING
from ssmad.errors import InputError


def test_default_background_is_unchanged() -> None:
    # Recorded from the generator at commit d850572, before the mosaic existed: target pixels exactly (they come from
    # the random stream), the cube to float32 rounding.
    parts = make_hsi_scene_parts(30, 20, bands=9, seed=3)
    expected_targets = [
        [4, 2], [4, 3], [4, 4], [4, 5], [4, 6], [5, 4], [5, 5], [5, 6], [5, 9], [6, 5], [6, 8], [6, 9], [7, 9],
        [9, 2], [10, 2], [10, 3], [10, 4], [10, 5], [13, 7], [14, 7], [16, 6], [18, 4], [19, 4], [19, 5],
        [19, 11], [20, 5], [20, 6], [21, 6], [21, 7], [26, 11], [26, 12], [26, 13], [27, 11],
    ]  # fmt: skip
    assert np.argwhere(parts.gt).tolist() == expected_targets
    assert float(parts.cube.astype(np.float64).sum()) == pytest.approx(1295.9919391934527, rel=1e-6)
    np.testing.assert_allclose(
        parts.cube[[0, 15, 29], [0, 7, 19]][:, [0, 4, 8]],
        [[0.0319733, 0.2234087, 0.1217973], [0.1566074, 0.2901666, 0.2915114], [0.0550544, 0.2809219, 0.2010746]],
        rtol=1e-5,
    )
    assert parts.background_materials == BACKGROUND_MATERIALS and parts.parcels is None and parts.gain is None
    explicit = make_hsi_scene(30, 20, bands=9, seed=3, background="mixture", background_materials=BACKGROUND_MATERIALS)
    for a, b in zip(make_hsi_scene(30, 20, bands=9, seed=3), explicit, strict=True):
        assert a.tobytes() == b.tobytes()


def _clean_mosaic(seed: int, **kwargs: object):
    """A mosaic without targets, illumination or noise: the cube is the background alone."""
    return make_hsi_scene_parts(
        60, 50, n_targets=0, noise_sigma=0.0, illumination=0.0, seed=seed, background="mosaic", **kwargs
    )


@pytest.mark.parametrize("seed", [0, 7])
def test_parcels_are_single_material(seed: int) -> None:
    parts = _clean_mosaic(seed)
    materials = np.array(parts.background_materials)
    assert set(materials.tolist()) == set(MOSAIC_MATERIALS)
    np.testing.assert_allclose(parts.abundances.sum(axis=-1), 1.0, atol=1e-5)
    pure = parts.parcel_share == 1.0
    assert pure.mean() > 0.6
    for y, x in np.argwhere(pure)[::7]:
        used = set(materials[parts.abundances[y, x] > 1e-6].tolist())
        assert len(used) == 1
    # Every parcel's pure pixels: one material, one dominant spectrum (the within-parcel share stays ≤ 0.3).
    dominant = parts.abundances.argmax(axis=-1)
    for p in np.unique(parts.parcels[pure]):
        sel = pure & (parts.parcels == p)
        assert len(set(materials[dominant[sel]].tolist())) == 1
        assert len(set(dominant[sel].tolist())) == 1
        assert parts.abundances[sel].max(axis=-1).min() >= 0.7 - 1e-6


def test_pure_pixels_unmix_into_one_material() -> None:
    # Independent of the stored abundances: non-negative least squares of the cube on the palette.
    parts = _clean_mosaic(3)
    materials = np.array(parts.background_materials)
    e = parts.background_endmembers.astype(np.float64).T  # (B, K)
    pure = np.argwhere(parts.parcel_share == 1.0)
    for y, x in pure[:: max(1, len(pure) // 40)]:
        coef, residual = nnls(e, parts.cube[y, x].astype(np.float64) / parts.gain[y, x])
        assert residual < 1e-3
        assert len(set(materials[coef > 1e-3].tolist())) == 1
    # Without gain, the clean cube is the abundance-weighted sum of the palette.
    recon = (parts.abundances.astype(np.float64) @ parts.background_endmembers) * parts.gain[..., None]
    np.testing.assert_allclose(parts.cube, recon, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 5])
def test_mixed_pixels_only_at_parcel_borders(seed: int) -> None:
    parts = _clean_mosaic(seed)
    labels = parts.parcels
    changes = ndimage.maximum_filter(labels, size=3, mode="nearest") != ndimage.minimum_filter(
        labels, size=3, mode="nearest"
    )
    mixed = parts.parcel_share < 1.0
    # A pixel with no other parcel in its 3 × 3 neighbourhood is pure ...
    assert not (mixed & ~changes).any()
    # ... while an edge between two parcels mostly crosses one of the two pixels beside it: it falls at a random
    # sub-pixel position, on a pixel boundary only 1 time in MOSAIC_SUPERSAMPLING.
    step = 1.0 / MOSAIC_SUPERSAMPLING**2
    assert np.allclose(np.round(parts.parcel_share / step) * step, parts.parcel_share, atol=1e-6)
    for axis in (0, 1):
        a, b = (labels[1:], labels[:-1]) if axis == 0 else (labels[:, 1:], labels[:, :-1])
        ma, mb = (mixed[1:], mixed[:-1]) if axis == 0 else (mixed[:, 1:], mixed[:, :-1])
        assert (ma | mb)[a != b].mean() > 0.5
    # Mixed pixels hold ≥ 2 spectra.
    assert ((parts.abundances[mixed] > 1e-6).sum(axis=-1) >= 2).all()
    assert 0.02 < mixed.mean() < 0.5


def test_mosaic_has_parcels_of_varied_size_and_streets() -> None:
    parts = _clean_mosaic(1, parcel_size=(3, 12))
    sizes = np.bincount(parts.parcels.ravel())
    sizes = sizes[sizes > 0]
    assert len(sizes) >= 15 and sizes.max() > 4 * sizes.min()
    no_streets = _clean_mosaic(1, parcel_size=(3, 12), street_width=False)
    assert not np.array_equal(no_streets.parcels, parts.parcels)
    # Brightness: parcel gain and texture stay within their documented ranges.
    assert 0.9 * (1 - 2 * 0.03) - 1e-6 <= parts.gain.min() and parts.gain.max() <= 1.1 * (1 + 2 * 0.03) + 1e-6


def test_mosaic_is_deterministic_and_keeps_targets() -> None:
    kw = {"background": "mosaic", "target_fraction": 0.017, "target_abundance": (0.05, 1.0)}
    a = make_hsi_scene(40, 50, bands=12, seed=2, **kw)
    b = make_hsi_scene(40, 50, bands=12, seed=2, **kw)
    c = make_hsi_scene(40, 50, bands=12, seed=3, **kw)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a.cube, c.cube)
    assert int(a.gt.sum()) == round(0.017 * 40 * 50)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"background": "city"}, "unknown background"),
        ({"background": "mosaic", "parcel_size": (5, 6)}, "twice"),
        ({"background": "mosaic", "parcel_size": (0, 6)}, "parcel_size"),
        ({"background": "mosaic", "street_width": (3, 1)}, "street_width"),
        ({"background": "mosaic", "spectra_per_material": 0}, "spectra_per_material"),
        ({"background": "mosaic", "within_variation": 0.9}, "within_variation"),
        ({"background": "mosaic", "texture": -0.1}, "texture"),
        ({"background": "mosaic", "background_materials": ("lava",)}, "lava"),
        ({"parcel_size": (3, 24)}, "only apply to background='mosaic'"),
        ({"texture": 0.1, "street_width": False}, "street_width, texture only apply"),
    ],
)
def test_bad_mosaic_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        make_hsi_scene(**{"h": 30, "w": 30, "bands": 8, **kwargs})
    assert "Fix:" in str(info.value)
