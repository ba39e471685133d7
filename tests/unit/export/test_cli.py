"""``ssmad export`` and ``ssmad predict --onnx`` on the command line: same outputs as ``--run``, exit-2 errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssmad.cli.main import main

pytest.importorskip("onnxruntime")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["-q", *argv])
    out, err = capsys.readouterr()
    return rc, " ".join((out + err).split())


def _images(folder: Path) -> Path:
    """Pictures of other sizes and modes than the model's 64 × 64 RGB: resize, conversion and map resampling."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (100, 48), dtype=np.uint8)).save(folder / "gray tall.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(folder / "rgba.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_predict_onnx_writes_what_predict_run_writes(exported, tmp_path, capsys):
    run, path = exported["mambaad"]
    images = _images(tmp_path / "images")
    common = ["--input", str(images), "--threshold", "0.05"]
    rc, text = _run(
        ["predict", "--run", str(run), "--out", str(tmp_path / "torch"), "--device", "cpu", *common], capsys
    )
    assert rc == 0, text
    rc, text = _run(["predict", "--onnx", str(path), "--out", str(tmp_path / "onnx"), *common], capsys)
    assert rc == 0, text
    assert "scored 3 image(s)" in text and "skipped 1" in text
    want = json.loads((tmp_path / "torch" / "scores.json").read_text())
    got = json.loads((tmp_path / "onnx" / "scores.json").read_text())
    assert set(got) - {"onnx"} == set(want) - {"run"}
    assert got["onnx"] == str(path) and got["model"] == want["model"] == "mambaad"
    assert got["threshold"] == want["threshold"] == 0.05
    assert len(got["skipped"]) == len(want["skipped"]) == 1 and "broken.png" in got["skipped"][0]
    assert len(got["images"]) == 3
    for a, b in zip(got["images"], want["images"], strict=True):
        assert set(a) == set(b)
        assert (a["image_path"], a["map"], a["overlay"]) == (b["image_path"], b["map"], b["overlay"])
        assert a["pred_score"] == pytest.approx(b["pred_score"], rel=1e-4)
        assert a["pred_label"] == b["pred_label"]
        m_onnx, m_torch = (np.load(tmp_path / d / a["map"]) for d in ("onnx", "torch"))
        assert m_onnx.shape == m_torch.shape != (64, 64) or "rgba" in a["image_path"]
        np.testing.assert_allclose(m_onnx, m_torch, rtol=1e-4, atol=1e-6)
        assert (tmp_path / "onnx" / a["overlay"]).stat().st_size > 0
    rows = (tmp_path / "onnx" / "scores.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["image_path", "pred_score", "pred_label"] and len(rows) == 4
    # results are never replaced silently
    rc, text = _run(["predict", "--onnx", str(path), "--out", str(tmp_path / "onnx"), *common], capsys)
    assert rc == 2 and "scores.json exists already" in text and "--overwrite" in text


def test_predict_onnx_on_an_array_batch(exported, tmp_path, capsys):
    run, path = exported["rd4ad"]
    batch = np.random.default_rng(6).integers(0, 256, (2, 48, 80, 3), dtype=np.uint8)
    np.save(tmp_path / "batch.npy", batch)
    for flag, target, out in (("--onnx", path, "onnx"), ("--run", run, "torch")):
        argv = ["predict", flag, str(target), "--input", str(tmp_path / "batch.npy"), "--out", str(tmp_path / out)]
        rc, text = _run([*argv, "--no-overlays"], capsys)
        assert rc == 0, text
    got, want = (json.loads((tmp_path / d / "scores.json").read_text()) for d in ("onnx", "torch"))
    assert (
        [r["image_path"] for r in got["images"]]
        == [r["image_path"] for r in want["images"]]
        == [
            "array[0]",
            "array[1]",
        ]
    )
    for a, b in zip(got["images"], want["images"], strict=True):
        assert a["pred_score"] == pytest.approx(b["pred_score"], rel=1e-4)
        np.testing.assert_allclose(
            np.load(tmp_path / "onnx" / a["map"]), np.load(tmp_path / "torch" / b["map"]), rtol=1e-4, atol=1e-6
        )


def test_export_command_errors_exit_2(exported, tmp_path, capsys, monkeypatch):
    run, path = exported["rd4ad"]
    target = tmp_path / "m.onnx"
    missing = tmp_path / "no_such_run"
    rc, text = _run(["export", "--run", str(missing), "--format", "onnx", "--out", str(target)], capsys)
    assert rc == 2 and str(missing) in text and "Fix" in text
    rc, text = _run(["export", "--run", str(run), "--format", "tflite", "--out", str(target)], capsys)
    assert rc == 2 and "'tflite'" in text and "--format onnx" in text
    rc, text = _run(["export", "--run", str(run), "--out", str(path)], capsys)
    assert rc == 2 and str(path) in text and "exists already" in text
    rc, text = _run(["export", "--run", str(run), "--out", str(target), "--exporter", "jit"], capsys)
    assert rc == 2 and "--exporter torchscript" in text
    monkeypatch.setitem(sys.modules, "onnx", None)
    rc, text = _run(["export", "--run", str(run), "--out", str(target)], capsys)
    assert rc == 2 and "pip install 'ssmad[export]'" in text
    assert not target.exists()


def test_predict_onnx_errors_exit_2(exported, tmp_path, capsys, monkeypatch):
    run, path = exported["rd4ad"]
    images = tmp_path / "img.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(images)
    out = ["--input", str(images), "--out", str(tmp_path / "out")]
    rc, text = _run(["predict", "--onnx", str(tmp_path / "none.onnx"), *out], capsys)
    assert rc == 2 and "none.onnx does not exist" in text and "Fix" in text
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01garbage" * 64)
    rc, text = _run(["predict", "--onnx", str(garbage), *out], capsys)
    assert rc == 2 and f"cannot read the ONNX model {garbage}" in text and "Fix" in text
    rc, text = _run(["predict", "--onnx", str(path), "--run", str(run), *out], capsys)
    assert rc == 2 and "--onnx and --run exclude each other" in text
    rc, text = _run(
        ["predict", "--onnx", str(path), "--input", str(tmp_path / "nothing"), "--out", str(tmp_path)], capsys
    )
    assert rc == 2 and "nothing does not exist" in text
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    rc, text = _run(["predict", "--onnx", str(path), *out], capsys)
    assert rc == 2 and "needs onnxruntime" in text and "pip install" in text
    assert not (tmp_path / "out").exists()
