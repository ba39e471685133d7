"""RD4AD network: shapes per encoder and size, parameter counts against analytic counts, frozen encoder and training
signal, loss and anomaly map against hand computations (scipy for the smoothing), options, and the detector facade
on a tiny synthetic MVTec folder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

import ssmad
from ssmad.errors import ConfigError, InputError
from ssmad.models.rd4ad import OCBE, RD4AD, Layout, RD4ADConfig, ReverseDecoder


def small(**kw) -> RD4ADConfig:
    base = dict(encoder="resnet18", pretrained=False, image_size=64)
    base.update(kw)
    return RD4ADConfig(**base)


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    return RD4AD(small())


@pytest.fixture(scope="module")
def lite0():
    torch.manual_seed(0)
    return RD4AD(small(encoder="tf_efficientnet_lite0"))


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize(("name", "channels"), [("r18", (64, 128, 256)), ("lite0", (24, 40, 112))])
def test_output_shapes(request, name, channels, size):
    net = request.getfixturevalue(name).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        enc, dec = net(x)
        bottleneck = net.ocbe(enc)
    expected = [(2, c, size // s, size // s) for c, s in zip(channels, (4, 8, 16), strict=True)]
    assert [tuple(e.shape) for e in enc] == expected
    assert [tuple(d.shape) for d in dec] == expected
    assert tuple(bottleneck.shape) == (2, 2 * channels[2], size // 32, size // 32)
    maps, scores = net.predict(x)
    assert maps.shape == (2, size, size) and scores.shape == (2,)
    torch.testing.assert_close(scores, maps.flatten(1).amax(1))


def _basic_count(c4: int, c8: int, c16: int, oce: int, layers: tuple[int, int, int]) -> int:
    """OCBE + reverse decoder of basic blocks, counted from the architecture (convs without bias, BN 2·C)."""
    out = 2 * c16
    mff = 9 * c4 * c8 + 2 * c8 + 2 * (9 * c8 * c16 + 2 * c16)
    first = 9 * 3 * c16 * out + 2 * out + 9 * out * out + 2 * out + 3 * c16 * out + 2 * out
    oce_n = first + (oce - 1) * 2 * (9 * out * out + 2 * out)
    dec, cin = 0, out
    for o, n in zip((c16, c8, c4), layers, strict=True):
        dec += 4 * cin * o + 2 * o + 9 * o * o + 2 * o + 4 * cin * o + 2 * o  # deconv, 3×3, shortcut deconv
        dec += (n - 1) * 2 * (9 * o * o + 2 * o)
        cin = o
    return mff + oce_n + dec


def _bottleneck_count(c4: int, c8: int, c16: int, oce: int, layers: tuple[int, int, int], bw: int) -> int:
    """Same for bottleneck blocks of width ``planes · bw / 64`` (planes = out / 4)."""
    out = 2 * c16
    mff = 9 * c4 * c8 + 2 * c8 + 2 * (9 * c8 * c16 + 2 * c16)

    def block(cin: int, o: int, k: int, shortcut: int) -> int:  # 1×1, k×k, 1×1 + BNs (+ shortcut of k_s×k_s)
        w = o // 4 * bw // 64
        n = cin * w + 2 * w + k * w * w + 2 * w + w * o + 2 * o
        return n + (shortcut * cin * o + 2 * o if shortcut else 0)

    oce_n = block(3 * c16, out, 9, 1) + (oce - 1) * block(out, out, 9, 0)
    dec, cin = 0, out
    for o, n in zip((c16, c8, c4), layers, strict=True):
        dec += block(cin, o, 4, 4) + (n - 1) * block(o, o, 9, 0)
        cin = o
    return mff + oce_n + dec


def test_parameter_counts(r18):
    assert r18.layout == Layout("basic", 64, (2, 2, 2), 2)  # upstream: BN_layer(BasicBlock, 2), de_resnet18
    assert _n(r18.ocbe) + _n(r18.decoder) == _basic_count(64, 128, 256, 2, (2, 2, 2))
    assert sum(p.numel() for p in r18.trainable_parameters()) == _n(r18) - _n(r18.encoder)


def test_wide_resnet_layout_and_count():
    """The paper's setting: WideResNet50-2 → bottleneck blocks of width 128, OCBE ×3, decoder (3, 4, 6)."""
    net_cfg = RD4ADConfig(pretrained=False)
    assert net_cfg.encoder == "wide_resnet50_2" and net_cfg.loss == "cosine" and net_cfg.image_size == 256
    from ssmad.encoders import TimmEncoder
    from ssmad.models.rd4ad import encoder_layout

    with torch.device("meta"):
        enc = TimmEncoder("wide_resnet50_2", pretrained=False)
        layout = encoder_layout(enc, net_cfg)
        assert layout == Layout("bottleneck", 128, (3, 4, 6), 3)
        ocbe = OCBE(enc.channels, layout)
        dec = ReverseDecoder(enc.channels, ocbe.out_dim, layout)
    assert enc.channels == (256, 512, 1024) and ocbe.out_dim == 2048
    assert dec.layer1[0].conv2.out_channels == 512  # width 256 planes · 128 / 64
    assert _n(ocbe) + _n(dec) == _bottleneck_count(256, 512, 1024, 3, (3, 4, 6), 128)


def test_encoder_frozen_and_loss_decreases():
    torch.manual_seed(0)
    net = RD4AD(small(encoder="tf_efficientnet_lite0"))
    net.train()
    assert not net.encoder.training and net.ocbe.training and net.decoder.training
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    opt = torch.optim.Adam(net.trainable_parameters(), lr=5e-3, betas=(0.5, 0.999))
    x = torch.randn(4, 3, 64, 64)
    losses = []
    for _ in range(6):
        enc, dec = net(x)
        loss = net.loss(enc, dec)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    for k, v in net.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in net.encoder.parameters())
    assert all(p.grad is not None for p in net.trainable_parameters())


def test_loss_against_hand_computation(r18):
    # per scale: sample 0 orthogonal (1 − cos = 1), sample 1 identical (0) → 0.5; RD4AD sums the scales (no average)
    a = torch.zeros(2, 2, 1, 1)
    a[:, 0] = 1
    b = a.clone()
    b[0, 0], b[0, 1] = 0, 3
    assert r18.loss([a, a, a], [b, b, b]).item() == pytest.approx(1.5)
    mse = RD4AD(small(loss="mse", loss_weight=2.0), encoder=r18.encoder)
    enc = [torch.ones(1, 3, 2, 2), torch.full((1, 4, 1, 1), 3.0)]
    dec = [torch.zeros(1, 3, 2, 2), torch.ones(1, 4, 1, 1)]
    assert mse.loss(enc, dec).item() == pytest.approx(2 * (1 + 4))


def test_anomaly_map_against_hand_computation(r18):
    """Scale 0 (16², at the output size): one pixel with 1 − cos = 1; scale 1: 1 − 1/√2 everywhere; scale 2: 2.

    Expected (divisor 1, σ = 4): scipy's ``gaussian_filter`` of ``delta + 1 − 1/√2 + 2``.
    """
    e0 = torch.zeros(1, 2, 16, 16)
    e0[:, 0] = 1
    d0 = e0.clone()
    d0[0, :, 5, 7] = torch.tensor([0.0, 1.0])
    e1 = torch.zeros(1, 2, 8, 8)
    e1[:, 0] = 1
    d1 = torch.ones(1, 2, 8, 8)
    e2 = torch.zeros(1, 2, 4, 4)
    e2[:, 0] = 1
    d2 = -e2
    amap = r18.anomaly_map([e0, e1, e2], [d0, d1, d2], (16, 16))
    assert amap.shape == (1, 1, 16, 16)
    raw = np.full((16, 16), 1 - 1 / math.sqrt(2) + 2, dtype=np.float64)
    raw[5, 7] += 1
    np.testing.assert_allclose(amap[0, 0].numpy(), gaussian_filter(raw, sigma=4), rtol=1e-5, atol=1e-6)
    plain = RD4AD(small(sigma=0.0, map_divisor=2.0), encoder=r18.encoder)
    np.testing.assert_allclose(
        plain.anomaly_map([e0, e1, e2], [d0, d1, d2], (16, 16))[0, 0].numpy(), raw / 2, rtol=1e-6
    )


def test_options_and_bad_input(r18):
    with pytest.raises(ConfigError, match="unknown option"):
        RD4ADConfig.from_dict({"encodr": "resnet18"})
    with pytest.raises(ConfigError, match="unknown option"):
        ssmad.create_model("rd4ad", encoder="resnet18", pretrained=False, image_size=64, scan_type="hilbert")
    with pytest.raises(ConfigError, match="multiple of 32"):
        small(image_size=100)
    with pytest.raises(ConfigError, match="block"):
        small(block="dense")
    with pytest.raises(ConfigError, match="decoder_layers"):
        small(decoder_layers=(2, 2))
    with pytest.raises(ConfigError, match="loss"):
        small(loss="l1")
    with pytest.raises(InputError, match="multiple of 32"):
        r18(torch.randn(1, 3, 48, 64))
    cfg = small(image_size=(64, 96), decoder_layers=[1, 1, 1], block="bottleneck", base_width=64, oce_blocks=1)
    assert RD4ADConfig.from_dict(cfg.to_dict()) == cfg and cfg.image_hw == (64, 96)
    net = RD4AD(cfg, encoder=r18.encoder).eval()
    assert net.layout == Layout("bottleneck", 64, (1, 1, 1), 1)
    maps, _ = net.predict(torch.randn(1, 3, 64, 96))
    assert maps.shape == (1, 64, 96)


def test_detector_fits_synthetic_mvtec(tmp_path):
    from ssmad.data.synthetic import make_mvtec_like

    make_mvtec_like(
        tmp_path / "data", categories="wood", n_train=5, n_test_good=1, n_test_defect=1, image_size=64, defects="stain"
    )
    det = ssmad.create_model("rd4ad", encoder="resnet18", pretrained=False, image_size=64)
    det.fit(tmp_path / "data", epochs=1, batch_size=2, progress=False)
    assert len(det.history_) == 1 and math.isfinite(det.history_[0]["loss"])
    test_images = sorted((tmp_path / "data" / "wood" / "test").rglob("*.png"))
    preds = det.predict_maps(test_images)
    assert len(preds) == len(test_images) == 2
    for p in preds:
        assert p.anomaly_map.shape == (64, 64) and p.pred_mask.shape == (64, 64)
        assert p.pred_score == pytest.approx(float(p.anomaly_map.max()), rel=1e-5)
    det.save(tmp_path / "model")
    again = ssmad.load(tmp_path / "model")
    np.testing.assert_allclose(again.decision_function(test_images), det.decision_function(test_images), rtol=1e-5)
