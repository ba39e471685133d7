"""evaluate(): result layout, class means, NaN rules, pixel metrics vs sklearn, input handling; StreamingEvaluator."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from ssmad.errors import InputError
from ssmad.metrics import METRICS_VERSION, SEVEN_METRICS, StreamingEvaluator, aupro, evaluate

from ._cases import realistic_batch


def _two_categories(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    maps, masks = realistic_batch(rng, 16, 48)
    masks[0, :6, :6] = masks[8, 10:20, 10:14] = True
    masks[1] = masks[9] = False
    labels = masks.any(axis=(1, 2)).astype(int)
    scores = maps.max(axis=(1, 2))
    return scores, labels, maps, masks, ["x"] * 8 + ["y"] * 8


def test_layout_names_and_per_category_values() -> None:
    scores, labels, maps, masks, cats = _two_categories()
    r = evaluate(scores, labels, maps, masks, cats)
    assert list(r)[:9] == [*SEVEN_METRICS, "pixel_IoUMax", "mAD"]
    assert r["definition"] == "exact" and r["metrics_version"] == METRICS_VERSION
    assert list(r["per_category"]) == ["x", "y"]
    for c, sl in (("x", slice(0, 8)), ("y", slice(8, 16))):
        got = r["per_category"][c]
        y, s = masks[sl].ravel(), maps[sl].ravel()
        assert got["pixel_AUROC"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
        assert got["pixel_AP"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
        assert got["pixel_AUPRO"] == pytest.approx(aupro(maps[sl], masks[sl]), abs=1e-12)
        assert got["mAD"] == pytest.approx(np.mean([got[k] for k in SEVEN_METRICS]), abs=1e-12)
        assert r["counts"][c] == {
            "n_images": 8,
            "n_anomalous": int(labels[sl].sum()),
            "n_anomalous_pixels": int(masks[sl].sum()),
            "n_regions": r["counts"][c]["n_regions"],
        }
    for k in SEVEN_METRICS:
        assert r[k] == pytest.approx((r["per_category"]["x"][k] + r["per_category"]["y"][k]) / 2, abs=1e-12)
    assert r["mAD"] == pytest.approx(np.mean([r[k] for k in SEVEN_METRICS]), abs=1e-12)


def test_class_mean_ignores_nan_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    scores, labels, maps, masks, cats = _two_categories()
    cats = ["x"] * 8 + ["y"] * 6 + ["only_normal"] * 2
    labels[14:] = 0
    masks[14:] = False
    with caplog.at_level(logging.WARNING, logger="ssmad.metrics"):
        r = evaluate(scores, labels, maps, masks, cats)
    bad = r["per_category"]["only_normal"]
    assert all(np.isnan(bad[k]) for k in SEVEN_METRICS) and np.isnan(bad["mAD"])
    assert "only_normal" in caplog.text and "undefined" in caplog.text
    for k in SEVEN_METRICS:
        assert r[k] == pytest.approx((r["per_category"]["x"][k] + r["per_category"]["y"][k]) / 2, abs=1e-12)
    assert np.isfinite(r["mAD"])


def test_image_only_has_no_pixel_keys_and_no_mad() -> None:
    r = evaluate([0.2, 0.8, 0.5], [0, 1, 1])
    assert {"image_AUROC", "image_AP", "image_F1Max"} <= set(r)
    assert not any(k.startswith("pixel_") for k in r) and "mAD" not in r
    assert r["image_AUROC"] == 1.0 and r["per_category"]["all"]["image_AUROC"] == 1.0


def test_lists_tensors_and_4d_maps_are_accepted() -> None:
    scores, labels, maps, masks, cats = _two_categories()
    ref = evaluate(scores, labels, maps, masks, cats)
    as_lists = evaluate(list(scores), list(labels), list(maps), list(masks.astype(np.uint8) * 255), cats)
    as_tensors = evaluate(
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        torch.from_numpy(maps)[:, None],
        torch.from_numpy(masks)[:, None],
        np.array(cats),
    )
    for r in (as_lists, as_tensors):
        for k in (*SEVEN_METRICS, "mAD"):
            assert r[k] == ref[k]


def test_curves_are_returned_on_request() -> None:
    scores, labels, maps, masks, cats = _two_categories()
    r = evaluate(scores, labels, maps, masks, cats, curves=True, curve_points=50)
    c = r["curves"]["x"]
    assert set(c) == {"image_roc", "pixel_roc", "pixel_pro"}
    assert c["pixel_roc"]["fpr"].size <= 50 and c["pixel_roc"]["auc"] == r["per_category"]["x"]["pixel_AUROC"]
    assert c["pixel_pro"]["aupro"] == r["per_category"]["x"]["pixel_AUPRO"]
    assert c["pixel_pro"]["fpr"][-1] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_scores": [0.1, 0.2], "image_labels": [0, 1, 1]}, "differ in length"),
        ({"image_scores": [0.1, 0.2], "image_labels": [0, 2]}, "0 \\(normal\\) and 1"),
        ({"image_scores": [0.1, float("nan")], "image_labels": [0, 1]}, "NaN"),
        ({"image_scores": [0.1, 0.2], "image_labels": [0, 1], "anomaly_maps": np.zeros((2, 4, 4))}, "both"),
        (
            {
                "image_scores": [0.1],
                "image_labels": [0],
                "anomaly_maps": np.zeros((2, 4, 4)),
                "gt_masks": np.zeros((2, 4, 4)),
            },
            "maps for 1",
        ),
        ({"image_scores": [0.1, 0.2], "image_labels": [0, 1], "categories": ["a"]}, "one category per image"),
        ({"image_scores": [0.1, 0.2], "image_labels": [0, 1], "definition": "anomalib"}, "unknown metric"),
        (
            {
                "image_scores": [0.1, 0.2],
                "image_labels": [0, 1],
                "anomaly_maps": [np.zeros((4, 4)), np.zeros((4, 5))],
                "gt_masks": np.zeros((2, 4, 4)),
            },
            "one size",
        ),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        evaluate(**kwargs)


def test_streaming_evaluator_matches_exact_within_bounds_and_merges() -> None:
    scores, labels, maps, masks, cats = _two_categories(3)
    exact = evaluate(scores, labels, maps, masks, cats)
    one = StreamingEvaluator()
    for i in range(0, 16, 5):  # batches straddle the two categories
        one.update(scores[i : i + 5], labels[i : i + 5], maps[i : i + 5], masks[i : i + 5], cats[i : i + 5])
    r = one.compute()
    assert r["definition"] == "binned" and r["metrics_version"] == METRICS_VERSION
    for c in ("x", "y"):
        for k in ("image_AUROC", "image_AP", "image_F1Max"):
            assert r["per_category"][c][k] == pytest.approx(exact["per_category"][c][k], abs=1e-12)
        for k, bound in r["error_bounds"][c].items():
            assert abs(r["per_category"][c][k] - exact["per_category"][c][k]) <= bound + 1e-12
    # two shards (odd/even images, like a distributed sampler), merged through pickled state dicts
    shards = [StreamingEvaluator(), StreamingEvaluator()]
    for i in range(16):
        shards[i % 2].update(scores[i : i + 1], labels[i : i + 1], maps[i : i + 1], masks[i : i + 1], cats[i])
    merged = StreamingEvaluator.from_state_dict(pickle.loads(pickle.dumps(shards[0].state_dict())))
    r2 = merged.merge(shards[1]).compute()
    for c in ("x", "y"):
        for k in (*SEVEN_METRICS, "pixel_IoUMax"):
            assert r2["per_category"][c][k] == pytest.approx(r["per_category"][c][k], abs=1e-12)


def test_streaming_evaluator_errors() -> None:
    with pytest.raises(InputError, match="empty"):
        StreamingEvaluator().compute()
    ev = StreamingEvaluator()
    ev.update([0.1, 0.9], [0, 1], np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), "a")
    ev.update([0.1, 0.9], [0, 1], categories="b")
    with pytest.raises(InputError, match="some categories"):
        ev.compute()
