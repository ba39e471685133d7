"""``ssmad convert mambaad-official``: a checkpoint written under the official names (built here from our own small
model with an independently written inverse mapping and independently computed scan tables) converts through the
CLI into a folder that ``ssmad.load`` reads with identical weights and predictions; bad files exit with code 2."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ssmad
from ssmad.cli.main import main
from ssmad.models.mambaad import MambaAD, MambaADConfig

# spec A.6 test vectors (numpy-hilbert-curve, as the official code uses it)
SPEC_HILBERT = {
    4: [0, 1, 5, 4, 8, 12, 13, 9, 10, 14, 15, 11, 7, 6, 2, 3],
    8: [0, 8, 9, 1, 2, 3, 11, 10, 18, 19, 27, 26, 25, 17, 16, 24, 32, 33, 41, 40, 48, 56, 57, 49, 50, 58, 59, 51, 43,
        42, 34, 35, 36, 37, 45, 44, 52, 60, 61, 53, 54, 62, 63, 55, 47, 46, 38, 39, 31, 23, 22, 30, 29, 28, 20, 21,
        13, 12, 4, 5, 6, 14, 15, 7],
}  # fmt: skip


def _hilbert(n: int) -> list[int]:
    """Classic Hilbert curve (the d2xy algorithm), flattened as ``x + y·n``."""
    out = []
    for d in range(n * n):
        x = y = 0
        s, t = 1, d
        while s < n:
            rx = 1 & (t // 2)
            ry = 1 & (t ^ rx)
            if ry == 0:
                if rx == 1:
                    x, y = s - 1 - x, s - 1 - y
                x, y = y, x
            x, y = x + s * rx, y + s * ry
            t //= 4
            s *= 2
        out.append(x + y * n)
    return out


def _snake(n: int) -> list[int]:
    return [r * n + (c if r % 2 == 0 else n - 1 - c) for r in range(n) for c in range(n)]


CURVES = {"hilbert": _hilbert, "scan": _snake}


def test_oracle_curve_matches_the_spec_vectors():
    for n, ref in SPEC_HILBERT.items():
        assert _hilbert(n) == ref


def _small(**kw) -> MambaADConfig:
    base = dict(encoder="resnet18", pretrained=False, image_size=64, decoder_depths=(3, 2, 2, 3), d_state=4)
    base.update(kw)
    return MambaADConfig(**base)


def to_upstream(state: dict[str, torch.Tensor], scan: str, side0: int, ader: bool) -> dict[str, torch.Tensor]:
    """Our names → the official ones (net_t / mff_oce / net_s), plus the scan tables the official SS2D stores."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("encoder.body."):
            name = "net_t." + key.removeprefix("encoder.body.")
        elif key.startswith("decoder."):
            name = "net_s." + key.removeprefix("decoder.")
        else:
            assert key.startswith("mff_oce.")
            name = key
        if ader:
            name = name.replace(".conv1b7.", ".conv1b3.").replace(".conv1a7.", ".conv1a3.")
        out[name] = value.clone()
    for key in list(out):
        if key.endswith(".self_attention.in_proj.weight"):
            stage = int(key.split(".")[2])
            perm = CURVES[scan](side0 * 2**stage)
            prefix = key.removesuffix("in_proj.weight") + "scans."
            out[prefix + "index_flat"] = torch.tensor(perm, dtype=torch.int64).view(1, 1, -1)
            out[prefix + "index_flat_inv"] = torch.tensor(np.argsort(perm), dtype=torch.int64).view(1, 1, -1)
        if ader and key.endswith(".finalconv11.weight"):  # ADer's unused depthwise 3×3
            c = out[key].shape[0]
            out[key.removesuffix("finalconv11.weight") + "conv33.0.weight"] = torch.randn(c, 1, 3, 3)
    return out


def _model(cfg: MambaADConfig) -> MambaAD:
    torch.manual_seed(3)
    net = MambaAD(cfg)
    with torch.no_grad():  # non-default statistics, so carrying them over is checked
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return net.eval()


def _assert_same_network(net: MambaAD, det) -> None:
    ours, theirs = net.state_dict(), det.net_.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
    x = torch.randn(1, 3, 64, 64)
    maps_a, scores_a = net.predict(x)
    maps_b, scores_b = det.net_.predict(x)
    torch.testing.assert_close(maps_a, maps_b, rtol=0, atol=0)
    torch.testing.assert_close(scores_a, scores_b, rtol=0, atol=0)


def test_convert_ader_trainer_checkpoint(tmp_path, capsys):
    """ADer naming (conv1b3/conv1a3 + unused conv33), nested as ADer's trainer saves it, DDP prefixes, snake scan."""
    net = _model(_small(scan_type="scan", num_directions=4))
    upstream = to_upstream(net.state_dict(), "scan", side0=2, ader=True)
    ckpt = tmp_path / "official.pth"
    torch.save({"net": {"module." + k: v for k, v in upstream.items()}, "optimizer": {"state": {}}, "epoch": 3}, ckpt)
    normal = tmp_path / "normal"
    normal.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(normal / f"{i}.png")
    out = tmp_path / "converted"
    assert main(["convert", "mambaad-official", str(ckpt), "--out", str(out), "--normal", str(normal)]) == 0
    printed = capsys.readouterr().out
    # 4 LSS modules (depths 3, 2, 2, 3) × 2 wrappers (conv1b7, conv1a7) × 2 tensors (weight, bias)
    assert "renamed 16 tensors" in printed
    det = ssmad.load(out)
    cfg = det.config
    assert (cfg.encoder, cfg.image_size, cfg.scan_type, cfg.num_directions) == ("resnet18", 64, "scan", 4)
    assert (cfg.decoder_depths, cfg.d_state, cfg.lss_kernel_sizes) == ((3, 2, 2, 3), 4, (5, 7))
    _assert_same_network(net, det)
    record = json.loads((out / "conversion.json").read_text())
    assert record["naming"] == "ader"
    assert sum(".scans.index_flat" in k for k in record["dropped"]) == 2 * sum(cfg.decoder_depths)
    assert sum(".conv33." in k for k in record["dropped"]) == 4
    assert math.isfinite(det.threshold_) and det.threshold_ > 0
    assert len(det.predict_maps(normal)) == 3


def test_convert_plain_state_dict_with_explicit_encoder(tmp_path, capsys):
    """The MambaAD repository's names, a bare state dict, Hilbert scans, an encoder named on the command line."""
    net = _model(_small(encoder="tf_efficientnet_lite0", scan_type="hilbert", num_directions=2))
    ckpt = tmp_path / "lite.pth"
    torch.save(to_upstream(net.state_dict(), "hilbert", side0=2, ader=False), ckpt)
    out = tmp_path / "c"
    base = ["convert", "mambaad-official", str(ckpt), "--out", str(out)]
    assert main(base) == 2  # the encoder cannot be told from an EfficientNet layout
    assert "--encoder" in capsys.readouterr().err
    assert main([*base, "--encoder", "tf_efficientnet_lite0", "--threshold", "0.25"]) == 0
    assert "renamed" not in capsys.readouterr().out
    det = ssmad.load(out)
    assert (det.config.scan_type, det.config.num_directions, det.config.image_size) == ("hilbert", 2, 64)
    assert det.threshold_ == det.pixel_threshold_ == 0.25
    assert det.preprocessing_.mean == (0.5, 0.5, 0.5)
    _assert_same_network(net, det)
    assert json.loads((out / "conversion.json").read_text())["naming"] == "mambaad"
    before = (out / "model.safetensors").read_bytes()
    assert main([*base, "--encoder", "tf_efficientnet_lite0"]) == 2  # the folder exists: nothing is overwritten
    assert "exists already" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


@pytest.fixture(scope="module")
def official_state():
    net = _model(_small(scan_type="hilbert", num_directions=2))
    return to_upstream(net.state_dict(), "hilbert", side0=2, ader=False)


def _convert(tmp_path, capsys, obj=None, raw: bytes | None = None) -> tuple[int, str]:
    ckpt = tmp_path / "bad.pth"
    if raw is not None:
        ckpt.write_bytes(raw)
    elif obj is not None:
        torch.save(obj, ckpt)
    code = main(["convert", "mambaad-official", str(ckpt), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert not (tmp_path / "out" / "metadata.json").exists()
    return code, err


def test_missing_and_corrupt_files(tmp_path, capsys):
    code, err = _convert(tmp_path, capsys)
    assert code == 2 and "does not exist" in err
    code, err = _convert(tmp_path, capsys, raw=b"this is not a checkpoint at all")
    assert code == 2 and "not a readable PyTorch checkpoint" in err
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(3)}, good)
    code, err = _convert(tmp_path, capsys, raw=good.read_bytes()[:-40])
    assert code == 2 and "bad.pth" in err


def test_python_objects_are_refused(tmp_path, capsys, official_state):
    code, err = _convert(tmp_path, capsys, obj={"net": official_state, "cfg": argparse.Namespace(lr=0.005)})
    assert code == 2 and "weights_only" in err


def test_other_architectures(tmp_path, capsys, official_state):
    import torchvision

    code, err = _convert(tmp_path, capsys, obj=torchvision.models.resnet18(weights=None).state_dict())
    assert code == 2 and "not a MambaAD checkpoint" in err
    extra = {**official_state, "net_x.head.weight": torch.zeros(2)}
    code, err = _convert(tmp_path, capsys, obj=extra)
    assert code == 2 and "net_x.head.weight" in err
    missing = {k: v for k, v in official_state.items() if not k.startswith("net_s.layers_up.2.blocks.0.finalconv11")}
    code, err = _convert(tmp_path, capsys, obj=missing)
    assert code == 2 and "missing" in err and "finalconv11" in err
    no_norm = {k: v for k, v in official_state.items() if k != "net_s.layers_up.1.blocks.0.smm_blocks.0.ln_1.weight"}
    code, err = _convert(tmp_path, capsys, obj=no_norm)
    assert code == 2 and "ln_1.weight" in err
    reshaped = dict(official_state)
    reshaped["mff_oce.convf.weight"] = torch.zeros(3, 3, 1, 1)
    code, err = _convert(tmp_path, capsys, obj=reshaped)
    assert code == 2 and "mff_oce.convf.weight" in err


def test_scan_tables_are_validated(tmp_path, capsys, official_state):
    key = "net_s.layers_up.3.blocks.0.smm_blocks.0.self_attention.scans.index_flat"
    tampered = dict(official_state)
    perm = tampered[key].flatten().tolist()
    perm[0], perm[1] = perm[1], perm[0]
    tampered[key] = torch.tensor(perm).view(1, 1, -1)
    tampered[key + "_inv"] = torch.tensor(np.argsort(perm)).view(1, 1, -1)
    code, err = _convert(tmp_path, capsys, obj=tampered)
    assert code == 2 and "match none of the scan curves" in err
    broken_inverse = dict(official_state)
    broken_inverse[key + "_inv"] = broken_inverse[key].clone()
    code, err = _convert(tmp_path, capsys, obj=broken_inverse)
    assert code == 2 and "inverse" in err
