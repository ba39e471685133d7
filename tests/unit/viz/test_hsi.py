"""Hyperspectral panels: display image from a band / RGB / cube, score and ground-truth columns, enlargement."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from ssmad.errors import InputError
from ssmad.viz import OutputExistsError, hsi_panel, save_hsi_panel
from ssmad.viz.hsi import auto_scale, display_image

H, W, B = 10, 14, 20
GAP = 4


def cols(panel: np.ndarray, n: int, w: int, gap: int = GAP) -> list[np.ndarray]:
    assert panel.shape[1] == n * w + (n - 1) * gap
    return [panel[:, k * (w + gap) : k * (w + gap) + w] for k in range(n)]


@pytest.fixture
def scene():
    rng = np.random.default_rng(5)
    cube = rng.normal(1000, 100, (H, W, B))
    scores = rng.random((H, W))
    gt = np.zeros((H, W), np.uint8)
    gt[3, 4] = gt[7, 10] = 1
    scores[7, 10] = 3.0
    return cube, scores, gt


def test_columns_and_shapes(scene):
    cube, scores, gt = scene
    panel = hsi_panel(cube, scores, gt, scale=1)
    assert panel.dtype == np.uint8 and panel.shape == (H, 4 * W + 3 * GAP, 3)
    assert hsi_panel(cube, scores, scale=1).shape == (H, 3 * W + 2 * GAP, 3)
    assert hsi_panel(None, scores, gt, scale=1).shape == (H, 2 * W + GAP, 3)


def test_gt_column_equals_gt_and_score_column_peaks_at_the_target(scene):
    cube, scores, gt = scene
    _, gt_col, score_col, _ = cols(hsi_panel(cube, scores, gt, scale=1, cmap="gray"), 4, W)
    np.testing.assert_array_equal(gt_col, np.repeat(gt[..., None] * 255, 3, axis=-1))
    assert np.unravel_index(np.argmax(score_col[..., 0]), (H, W)) == (7, 10)
    norm = (scores - scores.min()) / (scores.max() - scores.min())
    expected = np.rint(colormaps["gray"](norm)[..., :3] * 255)
    np.testing.assert_allclose(score_col.astype(float), expected, atol=1)


def test_enlargement_repeats_pixels(scene):
    cube, scores, gt = scene
    small = hsi_panel(cube, scores, gt, scale=1)
    big = hsi_panel(cube, scores, gt, scale=3)
    assert big.shape == (3 * H, 4 * 3 * W + 3 * GAP, 3)
    for a, b in zip(cols(small, 4, W), cols(big, 4, 3 * W), strict=True):
        np.testing.assert_array_equal(b, np.repeat(np.repeat(a, 3, axis=0), 3, axis=1))
    assert auto_scale(100, 100) == 3 and auto_scale(512, 300) == 1
    assert hsi_panel(cube, scores).shape[0] == H * auto_scale(H, W)


def test_display_image_from_band_rgb_and_cube(scene):
    cube, _, _ = scene
    band = cube[..., 0]
    gray = display_image(band)
    assert gray.shape == (H, W, 3) and (gray[..., 0] == gray[..., 2]).all()
    lo, hi = np.percentile(band, (2, 98))
    expected = np.rint(np.clip((band - lo) / (hi - lo), 0, 1) * 255)
    np.testing.assert_allclose(gray[..., 0], expected, atol=1)
    rgb8 = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(display_image(rgb8), rgb8)  # uint8 RGB kept as is
    false_colour = display_image(cube)  # bands 15, 10, 4 of 0..19 as R, G, B
    for channel, b in enumerate((round(19 * 0.8), round(19 * 0.5), round(19 * 0.2))):
        np.testing.assert_array_equal(false_colour[..., channel], display_image(cube[..., b])[..., 0])
    np.testing.assert_array_equal(display_image(cube, bands=(1, 2, 3))[..., 1], display_image(cube[..., 2])[..., 0])


def test_bad_input(scene):
    cube, scores, gt = scene
    with pytest.raises(InputError, match="score map"):
        hsi_panel(cube[:5], scores, gt)
    with pytest.raises(InputError, match="ground truth"):
        hsi_panel(cube, scores, gt[:5])
    with pytest.raises(InputError):
        hsi_panel(cube, scores, scale=0)
    with pytest.raises(InputError):
        display_image(cube, bands=(0, 1))
    with pytest.raises(InputError):
        display_image(cube, bands=B)
    with pytest.raises(InputError):
        display_image(np.zeros((2, 2, 2, 2)))


def test_save_hsi_panel(tmp_path, scene):
    cube, scores, gt = scene
    path = save_hsi_panel(tmp_path / "scene.png", cube, scores, gt)
    assert path.stat().st_size > 0
    with pytest.raises(OutputExistsError):
        save_hsi_panel(path, cube, scores, gt)
