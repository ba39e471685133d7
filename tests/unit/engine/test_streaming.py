"""Bounded-memory evaluation: streamed (binned) metrics against the exact path, and pictures from recomputed maps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ssmad.data.layout import discover
from ssmad.engine.evaluate import collect
from ssmad.engine.runner import _select_overlays, write_evaluation
from ssmad.engine.streaming import StreamedResults, needs_streaming, shown_indices

from ._tiny import TinyDetector
from .conftest import TINY_TRAINER


@pytest.fixture(scope="module")
def fitted(synth_master: Path) -> tuple[TinyDetector, list]:
    import torch

    torch.set_num_threads(1)
    det = TinyDetector(trainer=TINY_TRAINER).fit(synth_master)
    return det, discover(synth_master, split="test")


def test_needs_streaming_counts_map_pixels() -> None:
    assert not needs_streaming(4096, (256, 256))  # 2^28 pixels: the budget itself stays exact
    assert needs_streaming(4097, (256, 256))
    assert needs_streaming(2, (4, 4), limit=31) and not needs_streaming(2, (4, 4), limit=32)


def test_streamed_metrics_match_the_exact_ones(fitted: tuple[TinyDetector, list]) -> None:
    det, test = fitted
    exact, full = det.evaluate(test, return_results=True)
    streamed, res = det.evaluate(test, return_results=True, exact_max_pixels=0)
    assert isinstance(res, StreamedResults) and res.maps.shape[0] == 0 and not isinstance(full, StreamedResults)
    assert exact["definition"] == "exact" and streamed["definition"] == "binned"
    np.testing.assert_array_equal(res.scores, full.scores)  # image scores are exact in both
    assert res.paths == full.paths and res.categories == full.categories
    for key in ("image_AUROC", "image_AP", "image_F1Max"):
        assert streamed[key] == exact[key]
    for key in ("pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO"):
        assert math.isfinite(exact[key]) and abs(streamed[key] - exact[key]) <= 1e-3, key
    bounds = streamed["error_bounds"]["brick"]
    assert abs(streamed["pixel_AUROC"] - exact["pixel_AUROC"]) <= bounds["pixel_AUROC"] + 1e-12
    assert streamed["n_images"] == exact["n_images"] == len(test)


def test_pictures_use_recomputed_maps(fitted: tuple[TinyDetector, list], tmp_path: Path) -> None:
    det, test = fitted
    metrics, res = det.evaluate(test, return_results=True, exact_max_pixels=0)
    asked: list[list[int]] = []

    def maps_for(indices: list[int]):
        asked.append(list(indices))
        return det.maps_of(test, res, indices)

    report = write_evaluation(
        tmp_path,
        metrics,
        res,
        pixel_threshold=det.pixel_threshold_,
        images=2,
        report=True,
        title="t",
        info={},
        maps_for=maps_for,
    )
    assert report is not None and report.is_file() and "binned" in report.read_text()
    assert len(list((tmp_path / "images").rglob("*.png"))) == 2
    assert asked == [shown_indices(res, _select_overlays(res, 2))]  # one recomputation: overlays + report cases
    assert len(asked[0]) < len(res) or len(res) <= 8
    # the recomputed maps are those of the exact path for the same images
    full = collect(det.net_, det._evaluation_data(test, det.preprocessing_), device=det.device_)
    again = det.maps_of(test, res, asked[0])
    np.testing.assert_allclose(again.maps, full.maps[asked[0]], rtol=0, atol=1e-6)
    assert again.paths == [full.paths[i] for i in asked[0]]
