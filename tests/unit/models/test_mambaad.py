"""MambaAD network: parameter counts against analytic counts and torchvision, decoder stage table (spec A.3),
drop-path schedule, initialisation, frozen encoder, loss values, training signal, sizes and bad input."""

from __future__ import annotations

import functools
import math
import operator

import pytest
import torch
import torchvision

from ssmad.errors import ConfigError, InputError
from ssmad.models.mambaad import MambaAD, MambaADConfig, decoder_dims, drop_path_schedule, lss_split


def tiny(**kw) -> MambaADConfig:
    base = dict(
        encoder="resnet18",
        pretrained=False,
        image_size=64,
        decoder_depths=(3, 2, 2, 3),
        d_state=4,
        num_directions=2,
    )
    base.update(kw)
    return MambaADConfig(**base)


@pytest.fixture(scope="module")
def paper_net():
    torch.manual_seed(0)
    return MambaAD(MambaADConfig(pretrained=False))


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _ss2d(c: int, k: int = 8, n: int = 16) -> int:
    d, r = 2 * c, math.ceil(c / 16)
    return c * 2 * d + d * 9 + d + k * (r + 2 * n) * d + k * d * r + k * d + k * d * n + k * d + 2 * d + d * c


def _decoder_count(dims=(512, 256, 128, 64), depths=(3, 4, 6, 3)) -> int:
    total = 0
    for i, (c, depth) in enumerate(zip(dims, depths, strict=True)):
        per = 3 if depth % 3 == 0 else 2
        modules = depth // per
        hss = depth * (_ss2d(c) + 2 * c)  # SS2D + ln_1
        local = modules * (sum(2 * (c * c + c) + c * k * k for k in (5, 7)) + 3 * c * c + c)
        expand = 0 if i == 0 else dims[i - 1] * 4 * c + 2 * c
        total += hss + local + expand
    return total


def _mff_count(c4=64, c8=128, c16=256, out=512, blocks=3) -> int:
    p = out // 4
    fusion = c4 * c8 * 9 + 2 * c8 + c8 * c8 + c8 + 2 * c8 + c8 * c16 * 9 + 2 * c16 + 2 * (c16 * c16 + c16 + 2 * c16)
    first = c16 * p + 2 * p + 9 * p * p + 2 * p + p * out + 2 * out + c16 * out + 2 * out
    rest = (blocks - 1) * (out * p + 2 * p + 9 * p * p + 2 * p + p * out + 2 * out)
    return fusion + first + rest


def test_parameter_count_resnet34_paper(paper_net):
    tv = torchvision.models.resnet34(weights=None)
    enc_ref = sum(p.numel() for n, p in tv.named_parameters() if not n.startswith(("layer4", "fc")))
    assert _n(paper_net.encoder) == enc_ref == 8_170_304
    assert _n(paper_net.mff_oce) == _mff_count()
    assert _n(paper_net.decoder) == _decoder_count()
    total = _n(paper_net)
    assert 25.6e6 <= total <= 25.7e6, total  # spec A.13
    assert sum(p.numel() for p in paper_net.trainable_parameters()) == total - enc_ref


def test_decoder_stage_table(paper_net):
    """Spec A.3: widths, LSS modules per stage, HSS blocks per module, PatchExpand and drop-path per module."""
    dec = paper_net.decoder
    expected = [
        (512, 1, 3, None, [0.2]),
        (256, 2, 2, (512, 1024), [0.16, 0.14667]),
        (128, 2, 3, (256, 512), [0.10667, 0.09333]),
        (64, 1, 3, (128, 256), [0.02667]),
    ]
    for stage, (c, n_lss, n_hss, expand, dps) in zip(dec.layers_up, expected, strict=True):
        assert len(stage.blocks) == n_lss
        assert all(len(m.smm_blocks) == n_hss and m.dim == c for m in stage.blocks)
        if expand is None:
            assert stage.upsample is None
        else:
            assert tuple(stage.upsample.expand.weight.shape) == (expand[1], expand[0])
            assert stage.upsample.norm.normalized_shape == (c,)
        got = []
        for m in stage.blocks:
            rates = {getattr(b.drop_path, "drop_prob", 0.0) for b in m.smm_blocks}
            assert len(rates) == 1  # all HSS blocks of a module share it
            got.append(rates.pop())
        assert got == pytest.approx(dps, abs=1e-4)
    ss = dec.layers_up[0].blocks[0].smm_blocks[0].self_attention
    assert (ss.d_inner, ss.d_state, ss.dt_rank, ss.num_directions, ss.scan_type) == (1024, 16, 32, 8, "hilbert")


def test_decoder_stage_shapes_follow_a3(paper_net):
    """Stage outputs at 64 px are the spec's 256 px table scaled by 1/4 (8·2^i → 2·2^i)."""
    shapes = []
    hooks = [
        s.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for s in paper_net.decoder.layers_up
    ]
    paper_net.eval()
    enc, dec = paper_net(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert shapes == [(1, 2, 2, 512), (1, 4, 4, 256), (1, 8, 8, 128), (1, 16, 16, 64)]
    assert (
        [tuple(d.shape) for d in dec]
        == [tuple(e.shape) for e in enc]
        == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]
    )


def test_schedule_and_split_helpers():
    assert [lss_split(d) for d in (3, 4, 6, 2, 9, 8)] == [(1, 3), (2, 2), (2, 3), (1, 2), (3, 3), (4, 2)]
    sched = drop_path_schedule((3, 4, 6, 3), 0.2)
    lin = [0.2 * i / 15 for i in range(16)][::-1]
    expected = [[lin[0]], [lin[3], lin[4]], [lin[7], lin[8]], [lin[13]]]
    assert [len(s) for s in sched] == [len(s) for s in expected]
    assert functools.reduce(operator.iadd, sched, []) == pytest.approx(functools.reduce(operator.iadd, expected, []))
    assert decoder_dims((64, 128, 256)) == (512, 256, 128, 64)
    assert decoder_dims((24, 40, 112)) == (224, 112, 40, 24)
    assert decoder_dims((24, 40, 112), 128) == (128, 112, 40, 24)


def test_initialisation(paper_net):
    dec = paper_net.decoder
    lin = dec.layers_up[1].blocks[0].smm_blocks[0].self_attention.in_proj.weight
    assert lin.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(dec.layers_up[2].upsample.norm.weight, torch.ones(128))
    ss = dec.layers_up[3].blocks[0].smm_blocks[1].self_attention
    assert torch.allclose(ss.A_logs, torch.log(torch.arange(1, 17.0)).expand_as(ss.A_logs))
    assert torch.equal(ss.Ds, torch.ones_like(ss.Ds))
    dw = dec.layers_up[2].blocks[1].conv77[0].weight
    assert dw.std().item() == pytest.approx(math.sqrt(2 / 49), rel=0.08)
    c = paper_net.mff_oce.conv2.weight  # kaiming normal, fan_out = 256·3·3
    assert c.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)
    assert torch.equal(paper_net.mff_oce.bn_layer[0].bn3.weight, torch.ones(512))


def test_encoder_frozen_and_decoder_trains():
    torch.manual_seed(0)
    net = MambaAD(tiny())
    net.train()
    assert not net.encoder.training and net.mff_oce.training
    enc_before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    bn_before = net.mff_oce.bn1.running_mean.clone()
    opt = torch.optim.AdamW(net.trainable_parameters(), lr=1e-3)
    x = torch.randn(2, 3, 64, 64)
    losses = []
    for _ in range(5):
        enc, dec = net(x)
        loss = net.loss(enc, dec)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
    for k, v in net.encoder.state_dict().items():
        assert torch.equal(v, enc_before[k]), k
    assert all(p.grad is None for p in net.encoder.parameters())
    assert not torch.equal(net.mff_oce.bn1.running_mean, bn_before)


def test_loss_values_against_hand_computation():
    net = MambaAD(tiny())
    enc = [torch.ones(2, 3, 4, 4), torch.full((2, 5, 2, 2), 2.0)]
    dec = [torch.zeros(2, 3, 4, 4), torch.full((2, 5, 2, 2), 1.0)]
    assert net.loss(enc, dec).item() == pytest.approx(5 * (1 + 1))
    cos_net = MambaAD(tiny(loss="cosine"), encoder=net.encoder)
    # sample 0 orthogonal (1 − cos = 1), sample 1 identical (0) → mean 0.5 per scale; ADer averages over scales
    a = torch.zeros(2, 2, 1, 1)
    a[:, 0] = 1
    b = a.clone()
    b[0, 0], b[0, 1] = 0, 3
    assert cos_net.loss([a, a], [b, b]).item() == pytest.approx(0.5)
    w_net = MambaAD(tiny(loss_weight=2.0), encoder=net.encoder)
    assert w_net.loss(enc, dec).item() == pytest.approx(2 * 2)


def test_other_encoders_and_input_sizes():
    net = MambaAD(tiny(encoder="tf_efficientnet_lite0")).eval()
    assert net.decoder.dims == (224, 112, 40, 24)
    assert (net.mean, net.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    maps, scores = net.predict(torch.randn(2, 3, 32, 64))
    assert maps.shape == (2, 32, 64) and scores.shape == (2,)
    torch.testing.assert_close(scores, maps.flatten(1).amax(1))


@pytest.mark.parametrize("size", [224, 256, 320])
def test_paper_sizes_small_decoder(size):
    net = MambaAD(tiny(decoder_depths=(2, 2, 2, 2), image_size=size)).eval()
    with torch.no_grad():
        _enc, dec = net(torch.randn(1, 3, size, size))
    assert [tuple(d.shape) for d in dec] == [(1, c, size // s, size // s) for c, s in ((64, 4), (128, 8), (256, 16))]


@pytest.mark.slow
@pytest.mark.parametrize("size", [224, 256, 320])
def test_paper_config_at_paper_sizes(paper_net, size):
    paper_net.eval()
    maps, _scores = paper_net.predict(torch.randn(1, 3, size, size))
    assert maps.shape == (1, size, size) and torch.isfinite(maps).all()


def test_scan_backends_agree():
    torch.manual_seed(0)
    ref = MambaAD(tiny(scan_backend="reference")).eval()
    fast = MambaAD(tiny(scan_backend="torch"), encoder=ref.encoder).eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(ref(x)[1], fast(x)[1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_bad_sizes_and_options():
    with pytest.raises(ConfigError, match="multiple of 32"):
        tiny(image_size=250)
    with pytest.raises(ConfigError, match="unknown option"):
        MambaADConfig.from_dict({"encodr": "resnet34"})
    with pytest.raises(ConfigError, match="decoder_depths"):
        tiny(decoder_depths=(3, 5, 6, 3))
    with pytest.raises(ConfigError, match="scan_type"):
        tiny(scan_type="peano")
    with pytest.raises(ConfigError, match="loss"):
        tiny(loss="l1")
    with pytest.raises(ConfigError, match="unknown encoder"):
        MambaAD(tiny(encoder="resnet35"))
    net = MambaAD(tiny()).eval()
    with pytest.raises(InputError, match="multiple of 32"):
        net(torch.randn(1, 3, 48, 32))


def test_config_round_trip():
    cfg = MambaADConfig(pretrained=False, image_size=(224, 320), scan_type="zorder", num_directions=4)
    again = MambaADConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert cfg.image_hw == (224, 320)
    assert MambaADConfig().effective_loss_weight == 5.0
    assert MambaADConfig(loss="cosine").effective_loss_weight == 1.0
