"""The onnxruntime predictor: torch-free, same resampling as PyTorch prediction, clear errors.

Oracles: ``torch.nn.functional.interpolate`` for the numpy bilinear resize, :func:`ssmad.engine.predict.map_to_input`
for bringing maps back to the input size, :func:`ssmad.engine.runs.safe_name` for output names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssmad.data.transforms import Preprocessing
from ssmad.errors import InputError, MissingDependencyError
from ssmad.export.runtime import OnnxDetector, _safe_name, map_to_input, resize_bilinear

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.mark.parametrize(
    ("src", "dst"), [((8, 8), (32, 32)), ((5, 7), (12, 3)), ((64, 64), (17, 91)), ((3, 1), (1, 4))]
)
def test_resize_bilinear_equals_torch(src, dst):
    x = np.random.default_rng(0).normal(size=src).astype(np.float32)
    want = F.interpolate(torch.from_numpy(x)[None, None], size=dst, mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(resize_bilinear(x, dst), want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("pre", "orig"),
    [
        (Preprocessing(image_size=16), (16, 16)),
        (Preprocessing(image_size=16), (40, 23)),
        (Preprocessing(image_size=(20, 24), crop_size=16), (50, 31)),
        (Preprocessing(image_size=(21, 19), crop_size=(16, 12)), (21, 19)),
    ],
)
def test_map_to_input_equals_the_pytorch_path(pre, orig):
    from ssmad.engine.predict import map_to_input as torch_map_to_input

    amap = np.random.default_rng(1).random(pre.output_hw, dtype=np.float32)
    got = map_to_input(amap, orig, pre)
    assert got.shape == orig and got.dtype == np.float32
    np.testing.assert_allclose(got, torch_map_to_input(amap, orig, pre), rtol=1e-6, atol=1e-6)


def test_output_names_follow_the_run_predictor():
    from ssmad.engine.runs import safe_name

    for name in ["000", "a b/c", "..x..", "array[3]", "é-ü_1.png", "", "__"]:
        assert _safe_name(name) == safe_name(name), name


def test_image_size_and_dtype_are_checked(exported):
    _, path = exported["rd4ad"]
    det = OnnxDetector(path, threads=1)
    assert det.input_hw == (64, 64) and det.model_name == "rd4ad"
    maps, scores = det.run(np.zeros((2, 64, 64, 3), np.uint8))
    assert maps.shape == (2, 64, 64) and scores.shape == (2,)
    with pytest.raises(InputError, match=r"\(N, 64, 64, 3\).*got \(1, 32, 32, 3\)"):
        det.run(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(InputError, match=r"\(N, 64, 64, 3\).*got \(64, 64, 3\)"):
        det.run(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match=r"uint8.*float32"):
        det.run(np.zeros((1, 64, 64, 3), np.float32))


def test_unreadable_or_foreign_model_files(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    with pytest.raises(InputError, match="does not exist"):
        OnnxDetector(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf" * 10)
    with pytest.raises(InputError, match=r"cannot read the ONNX model .*bad\.onnx.*Fix"):
        OnnxDetector(bad)
    half = tmp_path / "half.onnx"
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(foreign))
    with pytest.raises(InputError, match="not written by `ssmad export`"):
        OnnxDetector(foreign)
    half.write_bytes(foreign.read_bytes()[:20])
    with pytest.raises(InputError, match="cannot read"):
        OnnxDetector(half)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"onnxruntime.*ssmad\[export\]"):
        OnnxDetector(foreign)


#: Imported by nothing on the onnxruntime path: a hook makes each of them fail to import in the child process.
BLOCKED = ("torch", "torchvision", "timm", "einops", "scipy", "sklearn", "skimage", "yaml", "jsonargparse")

_CHILD = """
import importlib.abc, json, sys
BLOCKED = {blocked!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
sys.path.insert(0, {src!r})
from ssmad.cli.main import main

rc = main(["predict", "--onnx", {model!r}, "--input", {images!r}, "--out", {out!r}])
print(json.dumps({{"rc": rc, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
"""


def test_predict_onnx_runs_without_torch(exported, tmp_path):
    # torch and every other heavy dependency are blocked, matplotlib too: overlays are skipped with a warning,
    # maps and scores are written
    from PIL import Image

    _, path = exported["mambaad"]
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(images / "b.png")
    out = tmp_path / "out"
    code = textwrap.dedent(_CHILD).format(
        blocked=(*BLOCKED, "matplotlib"), src=str(SRC), model=str(path), images=str(images), out=str(out)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"rc": 0, "loaded": []}, proc.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_images"] == 2 and scores["model"] == "mambaad"
    assert [r["image_path"] for r in scores["images"]] == [str(images / "a.png"), str(images / "b.png")]
    assert np.load(out / "maps" / "a.npy").shape == (70, 90)
    assert (out / "scores.csv").read_text().count("\n") == 3
    assert not (out / "overlays").exists()
    assert "overlays need matplotlib" in " ".join((proc.stdout + proc.stderr).split())
