"""``ssmad predict`` at scale: a 4096×4096 input stops with exit 2 and the fix; model-resolution maps work for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ssmad
from ssmad.cli.main import main
from ssmad.engine.runner import MAX_PREDICT_PIXELS

from .conftest import TINY_TRAINER


@pytest.fixture
def run(tiny_registered: str, synth_master: Path, tmp_path: Path) -> Path:
    from ._tiny import TinyDetector

    det = TinyDetector(trainer={**TINY_TRAINER, "eval_batch_size": 2}).fit(synth_master)
    return det.save(tmp_path / "run")


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4096×4096 grayscale PNG (a horizontal gradient: quick to write and to decode)."""
    ramp = np.linspace(0, 255, 4096).astype(np.uint8)
    path = tmp_path_factory.mktemp("big") / "big.png"
    Image.fromarray(np.broadcast_to(ramp, (4096, 4096)).copy()).save(path, compress_level=1)
    return path


def test_4096_image_stops_with_exit_2_naming_the_limit_and_the_fix(
    run: Path, big_image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert 4096 * 4096 > MAX_PREDICT_PIXELS
    out = tmp_path / "pred"
    assert main(["-q", "predict", "--run", str(run), "--input", str(big_image), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for part in ("big.png is 4096×4096 = 16,777,216 pixels", f"{MAX_PREDICT_PIXELS:,}", "--map-resolution model",
                 "--max-pixels 16777216", "Nothing was written"):  # fmt: skip
        assert part in err, part
    assert not out.exists()


def test_model_resolution_handles_the_4096_image(run: Path, big_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    argv = ["-q", "predict", "--run", str(run), "--input", str(big_image), "--out", str(out)]
    assert main([*argv, "--map-resolution", "model"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    det = ssmad.load(run)
    (expected,) = det.predict_maps([big_image], input_resolution=False)
    row = scores["images"][0]
    assert scores["map_resolution"] == "model" and row["pred_score"] == pytest.approx(expected.pred_score, rel=1e-6)
    amap = np.load(out / row["map"])
    assert amap.shape == det.preprocessing_.output_hw
    np.testing.assert_allclose(amap, expected.anomaly_map, rtol=0, atol=1e-6)
    with Image.open(out / row["overlay"]) as im:
        assert im.height < 200  # panels at the model's 32×32 (plus labels and caption), not 4096 high


def test_folder_with_a_broken_file_matches_predict_maps(run: Path, synth_master: Path, tmp_path: Path) -> None:
    files = sorted((synth_master / "brick" / "test").rglob("*.png"))
    folder = tmp_path / "in"
    folder.mkdir()
    for i, f in enumerate(files + files[:1]):
        (folder / f"{i}_{f.name}").write_bytes(f.read_bytes())
    (folder / "9_broken.png").write_bytes(b"not a png")
    out = tmp_path / "pred"
    assert main(["-q", "predict", "--run", str(run), "--input", str(folder), "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    det = ssmad.load(run)
    expected = det.predict_maps(sorted(p for p in folder.iterdir() if p.name != "9_broken.png"))
    assert [r["image_path"] for r in scores["images"]] == [p.image_path for p in expected]
    assert [r["pred_score"] for r in scores["images"]] == pytest.approx([p.pred_score for p in expected], rel=1e-6)
    assert len(scores["skipped"]) == 1 and "9_broken.png" in scores["skipped"][0]
    for r, p in zip(scores["images"], expected, strict=True):
        np.testing.assert_allclose(np.load(out / r["map"]), p.anomaly_map, rtol=0, atol=1e-6)
