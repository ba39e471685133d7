"""ROC/PRO plotting: curve areas against sklearn and hand-computed cases, valid PNG output, input forms."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from ssmad.errors import InputError
from ssmad.viz import OutputExistsError, area_under, plot_pro, plot_roc, roc_points
from ssmad.viz.curves import as_pro, as_roc


def decode(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    img.load()
    return img


@pytest.mark.parametrize("seed", range(5))
def test_roc_area_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 200
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.random(n) + 0.4 * labels, 1)  # many ties
    curve = roc_points(labels, scores)
    assert curve.area == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert curve.x[0] == 0 and curve.x[-1] == 1 and (np.diff(curve.x) >= 0).all()


def test_pro_area_hand_computed():
    # Crossing segment (0.2, 0.5)-(0.4, 1.0) gives 0.75 at 0.3; area 0.05 + 0.0625 = 0.1125, / 0.3 = 0.375.
    assert area_under([0, 0.2, 0.4], [0, 0.5, 1.0], 0.3) == pytest.approx(0.375, abs=1e-12)
    # A vertical step at 0.1 before the limit: 0.01 + 0 + (0.6 + 0.8) / 2 * 0.2 = 0.15, / 0.3 = 0.5.
    assert area_under([0, 0.1, 0.1, 0.5], [0, 0.2, 0.6, 1.0], 0.3) == pytest.approx(0.5, abs=1e-12)
    # Limit exactly on a point: nothing is interpolated.
    assert area_under([0, 0.3, 1.0], [1, 1, 1], 0.3) == pytest.approx(1.0, abs=1e-12)
    # Without a limit: the plain trapezoid.
    assert area_under([0, 0.5, 1], [0, 1, 1]) == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_pro_area_matches_dense_numerical_integration(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([[0.0], np.sort(rng.random(30)), [1.0]])
    y = np.sort(rng.random(32))
    grid = np.linspace(0, 0.3, 300_001)
    dense = np.interp(grid, x, y)
    oracle = np.sum((dense[1:] + dense[:-1]) / 2 * np.diff(grid)) / 0.3
    assert area_under(x, y, 0.3) == pytest.approx(oracle, abs=1e-9)


def test_curve_input_forms_agree():
    fpr, tpr = np.array([0, 0.2, 1.0]), np.array([0, 0.8, 1.0])
    a = as_roc((fpr, tpr))
    b = as_roc({"fpr": fpr, "tpr": tpr})
    c = as_roc({"fpr": fpr[::-1], "tpr": tpr[::-1]})  # reversed order is sorted
    for curve in (b, c):
        np.testing.assert_array_equal(curve.x, a.x)
        np.testing.assert_array_equal(curve.y, a.y)
    assert a.area == pytest.approx(0.2 * 0.8 / 2 + 0.8 * 0.9, abs=1e-12)
    assert as_roc({"fpr": fpr, "tpr": tpr, "auc": 0.5}).area == 0.5  # a given area wins
    assert as_pro({"fpr": fpr, "pro": tpr, "aupro": 0.25}).area == 0.25


@pytest.mark.parametrize(
    "bad",
    [
        {"fpr": [0, 1]},
        {"fpr": [0, 1], "tpr": [0, 0.5, 1]},
        {"fpr": [], "tpr": []},
        3.0,
    ],
)
def test_malformed_curves_raise(bad):
    with pytest.raises(InputError):
        as_roc(bad)


def test_roc_points_bad_input():
    with pytest.raises(InputError):
        roc_points([0, 1], [0.5])
    with pytest.raises(InputError):
        roc_points([0, 1], [0.5, np.nan])
    with pytest.raises(InputError, match="one class"):
        roc_points([1, 1, 1], [0.1, 0.2, 0.3])


def test_plot_roc_png_size_and_file(tmp_path):
    rng = np.random.default_rng(0)
    curves = {
        "bottle": {"labels": rng.integers(0, 2, 50), "scores": rng.random(50)},
        "cable": ([0, 0.1, 1.0], [0, 0.9, 1.0]),
    }
    path = tmp_path / "roc.png"
    png = plot_roc(curves, path, figsize=(4, 3), dpi=50)
    assert decode(png).size == (200, 150)
    assert path.read_bytes() == png
    with pytest.raises(OutputExistsError):
        plot_roc(curves, path)
    other = plot_roc({"bottle": ([0, 1], [1, 1])}, figsize=(4, 3), dpi=50)
    assert decode(other).size == (200, 150)
    # Different curves draw different pixels.
    assert not np.array_equal(np.asarray(decode(png)), np.asarray(decode(other)))


def test_plot_roc_skips_single_class_categories(caplog):
    with caplog.at_level(logging.INFO, logger="ssmad.viz.curves"):
        png = plot_roc({"only_normal": {"labels": [0, 0], "scores": [0.1, 0.2]}})
    decode(png)
    assert "only_normal" in caplog.text


def test_plot_roc_many_categories():
    curves = {f"c{i}": ([0, i / 20, 1], [0, 0.5, 1]) for i in range(15)}
    decode(plot_roc(curves))


def test_plot_pro(tmp_path):
    png = plot_pro({"a": {"fpr": [0, 0.1, 0.5], "pro": [0, 0.6, 1]}}, tmp_path / "pro.png", dpi=40)
    assert decode(png).size == (200, 200)
    with pytest.raises(InputError):
        plot_pro({"a": ([0, 1], [0, 1])}, fpr_limit=0)


def test_empty_mapping_raises():
    with pytest.raises(InputError):
        plot_roc({})
    with pytest.raises(InputError):
        plot_pro({})
