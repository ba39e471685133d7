"""Safetensors checkpoints: state dicts, the resume state, detector save → load → identical predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ssmad.engine.checkpoint import (
    latest_training_state,
    load_state_dict,
    load_training_state,
    load_weights,
    save_state_dict,
    save_training_state,
)
from ssmad.engine.optim import build_optimizer, build_scheduler
from ssmad.errors import InputError

from .conftest import TINY_TRAINER


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_state_dict_round_trip_is_exact_and_refuses_to_overwrite(tmp_path: Path) -> None:
    net = _net()
    net[1].running_mean.add_(torch.randn(4))  # buffers are saved too
    path = save_state_dict(net, tmp_path / "m.safetensors", metadata={"model": "x"})
    loaded = load_state_dict(path)
    assert set(loaded) == set(net.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(loaded[k], v), k
    assert path.read_bytes()[:8] != b"PK\x03\x04"  # not a zip / pickle archive
    with pytest.raises(InputError, match="exists already"):
        save_state_dict(net, path)


def test_load_weights_of_another_architecture_names_the_problem(tmp_path: Path) -> None:
    save_state_dict(_net(), tmp_path / "a.safetensors")
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 2, 1))
    with pytest.raises(InputError, match=r"another shape.*another architecture"):
        load_weights(other, tmp_path / "a.safetensors")
    with pytest.raises(InputError, match="missing"):
        load_weights(nn.Sequential(_net(), nn.Linear(2, 2)), tmp_path / "a.safetensors")


def test_damaged_or_missing_weights_are_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match=r"bad\.safetensors"):
        load_state_dict(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_state_dict(tmp_path / "none.safetensors")


def test_training_state_round_trip(tmp_path: Path) -> None:
    net = _net()
    opt = build_optimizer(net, 0.01)
    sched = build_scheduler(opt, 10)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(2, 3, 5, 5)).square().mean().backward()
        opt.step()
        sched.step()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    save_training_state(
        tmp_path, model=net, optimizer=opt, scheduler=sched, epoch=3, iteration=3, history=[{"epoch": 1}]
    )
    save_training_state(
        tmp_path, model=net, optimizer=opt, scheduler=sched, epoch=4, iteration=4, history=[{"epoch": 1}]
    )
    latest = latest_training_state(tmp_path)
    assert latest is not None and latest.name == "epoch_0004"
    assert not (tmp_path / "epoch_0003").exists()  # only the newest is kept
    state = load_training_state(latest)
    assert (state["epoch"], state["iteration"]) == (4, 4)

    net2 = _net()
    opt2 = build_optimizer(net2, 0.01)
    sched2 = build_scheduler(opt2, 10)
    net2.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    a, b = opt.state_dict(), opt2.state_dict()
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][pid][key])), (pid, key)
    assert sched2.last_epoch == sched.last_epoch
    from ssmad.engine.seed import set_rng_state

    torch.manual_seed(999)
    set_rng_state(state["rng_tensors"], state["rng_json"])
    assert torch.equal(torch.rand(3), expected_draw)


def test_interrupted_save_keeps_the_previous_pointer(tmp_path: Path) -> None:
    net = _net()
    opt = build_optimizer(net, 0.01)
    sched = build_scheduler(opt, 10)
    save_training_state(tmp_path, model=net, optimizer=opt, scheduler=sched, epoch=1, iteration=1, history=[])
    # a kill while writing epoch 2: its folder exists but the pointer still names epoch 1
    (tmp_path / "epoch_0002").mkdir()
    (tmp_path / "epoch_0002" / "model.safetensors").write_bytes(b"partial")
    assert latest_training_state(tmp_path) == tmp_path / "epoch_0001"


def test_tiny_detector_save_load_predict_identical(synth_master: Path, tmp_path: Path, tiny_registered: str) -> None:
    import ssmad

    from ._tiny import TinyDetector

    det = TinyDetector(trainer=TINY_TRAINER).fit(synth_master)
    det.save(tmp_path / "saved")
    names = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert names == ["config.yaml", "metadata.json", "model.safetensors"]
    meta = json.loads((tmp_path / "saved" / "metadata.json").read_text())
    assert meta["model"] == "tiny" and meta["threshold"]["image"] == det.threshold_
    assert meta["preprocessing"]["mean"] == [0.5, 0.5, 0.5]  # the encoder's statistics are recorded

    det2 = ssmad.load(tmp_path / "saved")
    assert type(det2) is TinyDetector
    for (k, v), (k2, v2) in zip(det.net_.state_dict().items(), det2.net_.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    test_dir = synth_master / "brick" / "test"
    files = sorted(test_dir.rglob("*.png"))
    p1, p2 = det.predict_maps(files), det2.predict_maps(files)
    assert len(p1) == len(files) == len(p2)
    for a, b in zip(p1, p2, strict=True):
        assert a.image_path == b.image_path
        assert a.pred_score == b.pred_score and a.pred_label == b.pred_label
        np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
        np.testing.assert_array_equal(a.pred_mask, b.pred_mask)
    assert (det2.threshold_, det2.pixel_threshold_) == (det.threshold_, det.pixel_threshold_)

    # a second save into the same folder is refused and changes nothing
    before = (tmp_path / "saved" / "model.safetensors").read_bytes()
    with pytest.raises(InputError, match="exists already"):
        det2.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").read_bytes() == before


def test_loading_weights_into_another_configuration_fails_clearly(
    synth_master: Path, tmp_path: Path, tiny_registered: str
) -> None:
    import ssmad

    from ._tiny import TinyDetector

    TinyDetector(trainer=TINY_TRAINER).fit(synth_master).save(tmp_path / "a")
    TinyDetector(width=4, trainer=TINY_TRAINER).fit(synth_master).save(tmp_path / "b")
    # swap the weights: metadata says width 8, the file holds width 4
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match=r"model\.safetensors: the weights do not fit"):
        ssmad.load(tmp_path / "a")
    with pytest.raises(InputError, match=r"metadata\.json"):
        ssmad.load(tmp_path / "nowhere")


def test_mambaad_save_load_predict_identical(tmp_path: Path) -> None:
    """The real model, tiny options, one iteration: the reloaded detector gives bit-identical maps."""
    import ssmad
    from ssmad.data.synthetic import make_mvtec_like

    root = tmp_path / "data"
    make_mvtec_like(
        root, categories=("wood",), n_train=3, n_test_good=1, n_test_defect=1, defects=("scratch",), image_size=64
    )
    det = ssmad.create_model(
        "mambaad",
        encoder="resnet18",
        pretrained=False,
        image_size=64,
        decoder_depths=(2, 2, 2, 2),
        d_state=4,
        num_directions=2,
        oce_blocks=1,
        trainer={"epochs": 1, "batch_size": 2, "device": "cpu", "progress": False, "eval_batch_size": 4},
    )
    det.fit(root)
    assert len(det.history_) == 1 and np.isfinite(det.history_[0]["loss"])
    det.save(tmp_path / "saved")
    det2 = ssmad.load(tmp_path / "saved")
    assert type(det2).__name__ == "MambaADDetector"
    x = np.random.default_rng(0).integers(0, 256, size=(2, 48, 80, 3), dtype=np.uint8)
    p1, p2 = det.predict_maps(x), det2.predict_maps(x)
    for a, b in zip(p1, p2, strict=True):
        assert a.anomaly_map.shape == (48, 80)
        np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
        assert a.pred_score == b.pred_score
