"""ONNX export: onnxruntime equals PyTorch prediction, the file carries its metadata and only standard operators.

The oracle of the parity test is ``ssmad.load(run).predict_maps(images, input_resolution=False)`` — the PyTorch
prediction path with its default (fused C++) scan — against a bare onnxruntime session fed the same uint8 images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ssmad
from ssmad.errors import InputError, MissingDependencyError

from .conftest import THRESHOLDS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["mambaad", "rd4ad"])
def test_onnxruntime_equals_pytorch_prediction(exported, name):
    run, path = exported[name]
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)  # a batch size other than the traced 2
    images[1] = 40 + images[1] // 4  # a dull, low-contrast picture beside the noise
    expected = ssmad.load(run).predict_maps(images, input_resolution=False)
    session = _session(path)
    maps, scores = session.run(None, {"image": images})
    assert maps.dtype == np.float32 and scores.dtype == np.float32
    assert maps.shape == (3, 64, 64) and scores.shape == (3,)
    want_maps = np.stack([p.anomaly_map for p in expected])
    want_scores = np.array([p.pred_score for p in expected], dtype=np.float32)
    assert np.ptp(want_maps) > 0 and np.ptp(want_scores) > 0  # non-trivial outputs
    np.testing.assert_allclose(maps, want_maps, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=0)
    # batch of one: the batch axis is dynamic
    one_map, one_score = session.run(None, {"image": images[2:]})
    np.testing.assert_allclose(one_map[0], want_maps[2], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(one_score, want_scores[2:], rtol=1e-4)


@pytest.mark.parametrize("name", ["mambaad", "rd4ad"])
def test_file_layout_and_metadata(exported, name):
    run, path = exported[name]
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}  # no custom operator
    (inp,) = model.graph.input
    assert inp.name == "image"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [64, 64, 3]
    outs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert set(outs) == {"anomaly_map", "pred_score"}
    assert all(t.elem_type == onnx.TensorProto.FLOAT for t in outs.values())
    assert [len(t.shape.dim) for t in (outs["anomaly_map"], outs["pred_score"])] == [3, 1]
    meta = {p.key: p.value for p in model.metadata_props}
    run_meta = json.loads((run / "metadata.json").read_text())
    assert meta["ssmad_version"] == ssmad.__version__
    assert meta["model"] == name
    assert json.loads(meta["image_size"]) == [64, 64]
    assert json.loads(meta["preprocessing"]) == run_meta["preprocessing"]
    assert json.loads(meta["threshold"]) == pytest.approx(THRESHOLDS[name][0])
    assert json.loads(meta["pixel_threshold"]) == pytest.approx(THRESHOLDS[name][1])
    assert Path(meta["source_run"]) == run.resolve()
    if name == "mambaad":  # the scan orders are Gather operators; the scans' decays are Exp operators
        ops = {n.op_type for n in model.graph.node}
        assert {"Gather", "Exp", "CumSum"} <= ops


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation and constant-folding notes
def test_one_ss2d_layer_exports_and_runs(tmp_path):
    # the smallest piece with every export-specific part: gathers by scan order, the blocked scan, the merge
    from ssmad.layers.ss2d import SS2D
    from ssmad.ssm import export_mode

    layer = SS2D(d_model=8, d_state=4, num_directions=8, scan_type="hilbert").eval()
    x = torch.randn(2, 5, 7, 8)
    with torch.no_grad(), export_mode():
        torch.onnx.export(layer, (x,), str(tmp_path / "ss2d.onnx"), dynamo=False, input_names=["x"], opset_version=18)
    (got,) = _session(tmp_path / "ss2d.onnx").run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = layer(x).numpy()  # the fused C++ kernel
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_export_refuses_bad_requests(exported, tmp_path, monkeypatch):
    from ssmad.export.to_onnx import export_onnx

    run, path = exported["rd4ad"]
    with pytest.raises(InputError, match="does not exist"):
        export_onnx(tmp_path / "no_run", tmp_path / "m.onnx")
    with pytest.raises(InputError, match="exists already"):
        export_onnx(run, path)
    with pytest.raises(InputError, match="opset"):
        export_onnx(run, tmp_path / "m.onnx", opset=13)
    with pytest.raises(InputError, match="exporter"):
        export_onnx(run, tmp_path / "m.onnx", exporter="tensorrt")
    hsi = tmp_path / "rx_run"
    hsi.mkdir()
    (hsi / "metadata.json").write_text(json.dumps({"model": "rx"}))
    with pytest.raises(InputError, match="hyperspectral"):
        export_onnx(hsi, tmp_path / "m.onnx")
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"ssmad\[export\]"):
        export_onnx(run, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_model(exported, tmp_path):
    from ssmad.export.to_onnx import export_onnx

    run, path = exported["mambaad"]
    result = export_onnx(run, tmp_path / "dynamo.onnx", exporter="dynamo")
    assert result.max_rel_diff is not None and result.max_rel_diff < 1e-4
    images = np.random.default_rng(2).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    a = _session(path).run(None, {"image": images})
    b = _session(tmp_path / "dynamo.onnx").run(None, {"image": images})
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
