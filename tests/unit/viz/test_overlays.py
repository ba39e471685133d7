"""Overlay panels: layout, dtypes, and that every column shows exactly what it claims to show."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from ssmad.errors import InputError
from ssmad.viz import OutputExistsError, global_range, normalize_map, overlay, save_overlay
from ssmad.viz.overlays import header_height

H, W = 24, 32
GAP = 4


def columns(panel: np.ndarray, n: int, w: int = W, gap: int = GAP, top: int = 0) -> list[np.ndarray]:
    """Split a panel by the documented layout: column k at x = k * (w + gap)."""
    assert panel.shape[1] == n * w + (n - 1) * gap
    return [panel[top:, k * (w + gap) : k * (w + gap) + w] for k in range(n)]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(123)


@pytest.fixture
def image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture
def amap(rng: np.random.Generator) -> np.ndarray:
    return rng.random((H, W))


@pytest.fixture
def mask(rng: np.random.Generator) -> np.ndarray:
    return rng.random((H, W)) > 0.7


@pytest.mark.parametrize(
    ("with_image", "with_gt", "with_pred", "n"),
    [
        (True, False, False, 2),
        (True, True, False, 3),
        (True, True, True, 4),
        (True, False, True, 3),
        (False, False, False, 1),
        (False, True, True, 3),
    ],
)
def test_panel_shape_and_dtype(image, amap, mask, with_image, with_gt, with_pred, n):
    panel = overlay(
        image if with_image else None,
        amap,
        mask if with_gt else None,
        ~mask if with_pred else None,
    )
    assert panel.dtype == np.uint8
    assert panel.shape == (H, n * W + (n - 1) * GAP, 3)


def test_gap_is_white_and_configurable(image, amap, mask):
    panel = overlay(image, amap, mask, gap=7)
    assert panel.shape == (H, 3 * W + 2 * 7, 3)
    assert (panel[:, W : W + 7] == 255).all()
    assert (panel[:, 2 * W + 7 : 2 * W + 14] == 255).all()


def test_image_column_is_the_image(image, amap):
    img_col, _ = columns(overlay(image, amap), 2)
    np.testing.assert_array_equal(img_col, image)


def test_grayscale_and_float_images_are_converted(amap):
    gray = np.linspace(0, 1, H * W).reshape(H, W)  # float in [0, 1] → scaled by 255
    img_col, _ = columns(overlay(gray, amap), 2)
    expected = np.rint(gray * 255).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(img_col[..., c], expected)


def test_gt_column_equals_mask(image, amap, mask):
    _, gt_col, _ = columns(overlay(image, amap, mask), 3)
    np.testing.assert_array_equal(gt_col, np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=-1))


def test_gt_mask_from_file_and_other_values(tmp_path, image, amap, mask):
    path = tmp_path / "m.png"
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    _, from_file, _ = columns(overlay(image, amap, path), 3)
    _, from_ids, _ = columns(overlay(image, amap, mask.astype(np.int32) * 7), 3)  # instance ids > 0
    np.testing.assert_array_equal(from_file[..., 0] > 0, mask)
    np.testing.assert_array_equal(from_ids, from_file)


def test_gt_mask_of_half_size_is_upsampled_by_nearest(image, amap, rng):
    small = rng.random((H // 2, W // 2)) > 0.5
    _, gt_col, _ = columns(overlay(image, amap, small), 3)
    expected = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(gt_col[..., 0] > 0, expected)


def test_heat_column_matches_colormap_blend(image, amap):
    """Oracle: (1 - a) * image + a * 255 * cmap((m - min) / (max - min)), computed here with matplotlib directly."""
    for cmap, alpha in (("jet", 0.5), ("viridis", 0.3)):
        _, heat = columns(overlay(image, amap, cmap=cmap, alpha=alpha), 2)
        norm = (amap - amap.min()) / (amap.max() - amap.min())
        colour = colormaps[cmap](norm)[..., :3] * 255
        expected = np.rint((1 - alpha) * image + alpha * colour)
        np.testing.assert_allclose(heat.astype(float), expected, atol=1)  # rounding of the blend only


def test_hottest_pixel_is_where_the_map_peaks(rng):
    flat = np.full((H, W, 3), 100, np.uint8)
    for _ in range(5):
        m = rng.random((H, W))
        peak = np.unravel_index(rng.integers(H * W), (H, W))
        m[peak] = 5.0
        _, heat = columns(overlay(flat, m, cmap="gray"), 2)
        assert np.unravel_index(np.argmax(heat[..., 0]), (H, W)) == peak
        _, heat_only = columns(overlay(flat, m, cmap="gray", alpha=1.0), 2)
        assert heat_only[peak].tolist() == [255, 255, 255]


def test_small_map_is_upsampled_to_image_size(image):
    m = np.zeros((H // 4, W // 4))
    m[2, 5] = 1.0  # covers image rows 8..11, cols 20..23
    _, heat = columns(overlay(image * 0, m, cmap="gray", alpha=1.0), 2)
    r, c = np.unravel_index(np.argmax(heat[..., 0]), (H, W))
    assert 8 <= r < 12 and 20 <= c < 24
    assert heat[0, 0, 0] == 0  # far from the hot cell


def test_without_image_the_heat_column_is_the_colormap(amap):
    (heat,) = columns(overlay(None, amap, cmap="magma"), 1)
    norm = (amap - amap.min()) / (amap.max() - amap.min())
    expected = np.rint(colormaps["magma"](norm)[..., :3] * 255)
    np.testing.assert_allclose(heat.astype(float), expected, atol=1)


def test_fixed_range_makes_maps_comparable(image, amap):
    half = amap / 2
    # Per-image normalisation hides the scale: both maps look the same.
    a = columns(overlay(image, amap), 2)[1]
    b = columns(overlay(image, half), 2)[1]
    np.testing.assert_array_equal(a, b)
    # One fixed range shows it, and equals the oracle with that range.
    lo, hi = global_range([amap, half])
    assert (lo, hi) == (half.min(), amap.max())
    a = columns(overlay(image, amap, value_range=(lo, hi)), 2)[1]
    b = columns(overlay(image, half, value_range=(lo, hi)), 2)[1]
    assert not np.array_equal(a, b)
    colour = colormaps["jet"]((half - lo) / (hi - lo))[..., :3] * 255
    np.testing.assert_allclose(b.astype(float), np.rint(0.5 * image + 0.5 * colour), atol=1)


def test_fixed_range_clips(image):
    m = np.linspace(-1, 2, H * W).reshape(H, W)
    norm = normalize_map(m, (0.0, 1.0))
    assert norm.min() == 0.0 and norm.max() == 1.0
    np.testing.assert_allclose(norm, np.clip(m, 0, 1))


def test_nan_pixels_show_the_image(image, amap):
    m = amap.copy()
    m[3:6, 4:9] = np.nan
    m[0, 0] = np.inf
    _, heat = columns(overlay(image, m), 2)
    np.testing.assert_array_equal(heat[3:6, 4:9], image[3:6, 4:9])
    np.testing.assert_array_equal(heat[0, 0], image[0, 0])
    # The finite pixels are normalised by the finite min/max only.
    finite = np.isfinite(m)
    lo, hi = m[finite].min(), m[finite].max()
    norm = np.where(finite, (np.where(finite, m, lo) - lo) / (hi - lo), 0.0)
    expected = np.rint(0.5 * image + 0.5 * colormaps["jet"](norm)[..., :3] * 255)
    np.testing.assert_allclose(heat[finite].astype(float), expected[finite], atol=1)


def test_constant_and_all_nan_maps(image):
    with np.errstate(all="raise"):
        const = normalize_map(np.full((H, W), 3.0))
    assert (const == 0).all()
    _, heat = columns(overlay(image, np.full((H, W), np.nan)), 2)
    np.testing.assert_array_equal(heat, image)


def test_pred_column_tints_inside_and_keeps_outside(image, amap, mask):
    *_, pred = columns(overlay(image, amap, None, mask), 3)
    np.testing.assert_array_equal(pred[~mask], image[~mask])
    inside = pred[mask].astype(int)
    # Inside: the red tint (half image, half pure red) or the red outline itself.
    tint = np.rint(0.5 * image[mask] + 0.5 * np.array([255, 0, 0]))
    outline = np.all(inside == [255, 0, 0], axis=-1)
    np.testing.assert_allclose(inside[~outline], tint[~outline], atol=1)
    assert outline.any()


def test_threshold_gives_the_same_pred_column_as_the_explicit_mask(image, amap):
    t = 0.6
    by_threshold = overlay(image, amap, threshold=t)
    explicit = overlay(image, amap, pred_mask=amap >= t)
    np.testing.assert_array_equal(by_threshold, explicit)


def test_labels_and_caption_add_a_header(image, amap, mask):
    top = header_height(True, "caption", H)
    panel = overlay(image, amap, mask, labels=True, caption="caption")
    assert top > 0 and panel.shape[0] == H + top
    plain = overlay(image, amap, mask)
    np.testing.assert_array_equal(panel[top:], plain)
    assert (panel[:top] < 255).any()  # some text was drawn


def test_size_resizes_everything(image, amap, mask):
    panel = overlay(image, amap, mask, size=(12, 20))
    assert panel.shape == (12, 3 * 20 + 2 * GAP, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"anomaly_map": np.zeros((2, 4, 4))},
        {"anomaly_map": np.zeros((0, 4))},
        {"value_range": (1.0, 1.0)},
        {"value_range": (0.0, np.nan)},
        {"alpha": 1.5},
        {"cmap": "no-such-map"},
        {"size": (0, 4)},
        {"image": "/nonexistent/picture.png"},
    ],
)
def test_bad_input_raises_input_error(image, amap, kwargs):
    args = {"image": image, "anomaly_map": amap, **kwargs}
    with pytest.raises(InputError):
        overlay(args.pop("image"), args.pop("anomaly_map"), **args)


def test_global_range_without_finite_values():
    with pytest.raises(InputError):
        global_range([np.full((2, 2), np.nan)])


def test_save_overlay_writes_png_atomically_and_never_overwrites(tmp_path, image, amap, mask):
    path = tmp_path / "sub" / "000.png"
    save_overlay(path, image, amap, mask)
    expected = overlay(image, amap, mask, labels=True)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_overlay(path, image, amap * 0, mask, labels=False)
    assert path.read_bytes() == before
    save_overlay(path, image, amap, None, labels=False, overwrite=True)
    assert np.asarray(Image.open(path)).shape == (H, 2 * W + GAP, 3)
    assert sorted(p.name for p in path.parent.iterdir()) == ["000.png"]  # no temporary files left
