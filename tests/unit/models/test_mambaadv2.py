"""MambaADv2 network: shapes, the progressive scan rule against hand-computed plans, the redundancy statistic
against a loop, each switch changing the output, the plan stored with the weights, and bad configurations."""

from __future__ import annotations

import pytest
import torch

from ssmad.encoders import TimmEncoder
from ssmad.errors import ConfigError, InputError
from ssmad.models.mambaadv2 import MambaADv2, MambaADv2Config, local_redundancy, progressive_plan

SWITCHES = ("matrix_path", "recurrent_path", "trapezoid", "rotary", "bc_norm", "freq_conv", "progressive")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder() -> TimmEncoder:
    torch.manual_seed(0)
    return TimmEncoder("tf_efficientnet_lite0", pretrained=False)


def tiny(**kw) -> MambaADv2Config:
    base = dict(
        encoder="tf_efficientnet_lite0",
        pretrained=False,
        image_size=64,
        decoder_depths=(2, 2, 2, 2),
        d_state=4,
        headdim=8,
    )
    base.update(kw)
    return MambaADv2Config(**base)


def test_shapes_loss_and_maps(encoder: TimmEncoder) -> None:
    torch.manual_seed(0)
    net = MambaADv2(tiny(), encoder=encoder)
    x = torch.randn(2, 3, 64, 96)
    enc, dec = net(x)
    assert (
        [tuple(d.shape) for d in dec]
        == [tuple(e.shape) for e in enc]
        == [
            (2, 24, 16, 24),
            (2, 40, 8, 12),
            (2, 112, 4, 6),
        ]
    )
    loss = net.loss(enc, dec)
    loss.backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.decoder.parameters())
    maps, scores = net.predict(x)
    assert maps.shape == (2, 64, 96) and scores.shape == (2,)
    with pytest.raises(InputError, match="multiple of 32"):
        net(torch.randn(1, 3, 64, 80))


@pytest.mark.parametrize(
    ("rho", "plan"),
    [
        ([0.2, 0.2, 0.2, 0.2], [8, 4, 2, 1]),  # base budget only
        ([-0.2, 0.2, 0.2, 0.05], [8, 4, 2, 2]),  # low redundancy at the finest stage doubles it
        ([0.5, 0.05, 0.2, 0.2], [4, 4, 2, 1]),  # redundant coarse stage halves; stage 1 capped by stage 0
        ([0.0, 0.0, 0.0, 0.0], [8, 8, 4, 2]),  # everything new: twice the base, capped at 8 and progressive
        ([0.9, 0.9, 0.9, 0.9], [4, 2, 1, 1]),
    ],
)
def test_progressive_plan_rule(rho: list[float], plan: list[int]) -> None:
    assert progressive_plan(rho, 8, 0.1, 0.3) == plan


def test_local_redundancy_matches_a_loop() -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 5)
    g = f - f.mean(dim=(2, 3), keepdim=True)
    sims_h, sims_v = [], []
    for b in range(2):
        for i in range(4):
            for j in range(5):
                if j + 1 < 5:
                    sims_h.append(torch.nn.functional.cosine_similarity(g[b, :, i, j], g[b, :, i, j + 1], dim=0))
                if i + 1 < 4:
                    sims_v.append(torch.nn.functional.cosine_similarity(g[b, :, i, j], g[b, :, i + 1, j], dim=0))
    ref = (torch.stack(sims_h).mean() + torch.stack(sims_v).mean()) / 2
    assert abs(local_redundancy(f) - float(ref)) < 1e-6
    smooth = torch.linspace(0, 1, 16).view(1, 1, 4, 4).repeat(1, 3, 1, 1) * torch.tensor([1.0, 2.0, 3.0]).view(
        1, 3, 1, 1
    )
    assert local_redundancy(smooth) > 0.3 > local_redundancy(f)


def test_plan_is_set_on_the_first_batch_and_saved(encoder: TimmEncoder) -> None:
    torch.manual_seed(0)
    net = MambaADv2(tiny(), encoder=encoder)
    assert net.decoder.scan_plan.tolist() == [0, 0, 0, 0] and not net.decoder.plan_set
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        enc, _ = net(x)
    from ssmad.models.mambaadv2 import stage_features

    expected = progressive_plan([local_redundancy(f) for f in stage_features(enc)])
    assert net.decoder.scan_plan.tolist() == expected
    other = MambaADv2(tiny(), encoder=encoder)
    other.load_state_dict(net.state_dict())
    assert other.decoder.scan_plan.tolist() == expected
    fixed = MambaADv2(tiny(progressive=False, num_directions=4), encoder=encoder)
    assert fixed.decoder.scan_plan.tolist() == [4, 4, 4, 4]


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_runs_and_changes_the_output(encoder: TimmEncoder, switch: str) -> None:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    full = MambaADv2(tiny(), encoder=encoder).eval()
    torch.manual_seed(0)
    off = MambaADv2(tiny(**{switch: False}), encoder=encoder).eval()
    # give both the same weights where the parameter exists in both
    own = off.state_dict()
    off.load_state_dict(
        {k: v for k, v in full.state_dict().items() if k in own and own[k].shape == v.shape}, strict=False
    )
    with torch.no_grad():
        full(x)
        if switch == "progressive":  # make sure the plan differs from the flat one
            full.decoder.scan_plan.copy_(torch.tensor([8, 4, 2, 1]))
        a = full(x)[1]
        b = off(x)[1]
    assert all(torch.isfinite(t).all() for t in b)
    assert any(not torch.allclose(p, q, atol=1e-6) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        (dict(recurrent_path=False, matrix_path=False), "at least one"),
        (dict(rotary=True, d_state=5), "even d_state"),
        (dict(num_directions=3), "num_directions"),
        (dict(image_size=80), "multiple of 32"),
        (dict(rho_low=0.5, rho_high=0.1), "rho_low"),
        (dict(freq_conv=False, lss_kernel_sizes=()), "no local branch"),
        (dict(scan_backend="fast"), "scan_backend"),
        (dict(trapezoid="yes"), "true or false"),
    ],
)
def test_bad_configuration(kw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        tiny(**kw)


def test_config_round_trip() -> None:
    cfg = tiny(rotary=False)
    assert MambaADv2Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown option"):
        MambaADv2Config.from_dict({"rotory": False})
