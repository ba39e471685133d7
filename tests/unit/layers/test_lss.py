"""LSS module: forward against a functional re-implementation of the local branches, residual path, upstream
parameter names and counts, the fan-out initialisation, gradients and bad configurations."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ssmad.errors import ConfigError, InputError
from ssmad.layers import norm_act
from ssmad.layers.lss import LSSModule

SMALL = {"d_state": 4, "num_directions": 4, "scan_type": "hilbert"}


def _branch(x, m, k):
    """1x1 -> IN -> SiLU -> depthwise kxk -> IN -> SiLU -> 1x1 -> IN -> SiLU, written with torch.nn.functional."""
    c1 = getattr(m, f"conv1b{k}")[0]
    dw = getattr(m, f"conv{k}{k}")[0]
    c2 = getattr(m, f"conv1a{k}")[0]
    y = F.silu(F.instance_norm(F.conv2d(x, c1.weight, c1.bias)))
    y = F.silu(F.instance_norm(F.conv2d(y, dw.weight, None, padding=k // 2, groups=x.shape[1])))
    return F.silu(F.instance_norm(F.conv2d(y, c2.weight, c2.bias)))


def _randomise_biases(m):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias") and "dt_projs" not in name:
                p.uniform_(-0.3, 0.3)


@pytest.mark.parametrize("depth", [2, 3])
def test_forward_matches_functional_reference(depth):
    m = LSSModule(16, depth=depth, **SMALL).eval()
    _randomise_biases(m)
    x = torch.randn(2, 8, 8, 16)
    glob = x
    for blk in m.smm_blocks:
        glob = blk(glob)
    xc = x.permute(0, 3, 1, 2)
    cat = torch.cat([glob.permute(0, 3, 1, 2), _branch(xc, m, 5), _branch(xc, m, 7)], dim=1)
    ref = x + F.conv2d(cat, m.finalconv11.weight, m.finalconv11.bias).permute(0, 2, 3, 1)
    torch.testing.assert_close(m(x), ref, rtol=1e-5, atol=1e-5)


def test_zero_fusion_is_identity():
    m = LSSModule(8, depth=2, **SMALL)
    with torch.no_grad():
        m.finalconv11.weight.zero_()
        m.finalconv11.bias.zero_()
    x = torch.randn(1, 4, 4, 8)
    assert torch.equal(m(x), x)


def _ss2d_params(c, k, n):
    d = 2 * c
    r = math.ceil(c / 16)
    return (
        c * 2 * d  # in_proj
        + d * 9
        + d  # depthwise conv + bias
        + k * (r + 2 * n) * d  # x_proj
        + k * d * r
        + k * d  # dt_proj weight + bias
        + k * d * n
        + k * d  # A_logs, Ds
        + 2 * d  # out_norm
        + d * c  # out_proj
    )


def test_upstream_names_and_parameter_count():
    c, k, n = 16, 4, 4
    m = LSSModule(c, depth=3, **SMALL)
    names = set(m.state_dict())
    for key in (
        "conv1b5.0.weight",
        "conv1b5.0.bias",
        "conv55.0.weight",
        "conv1a5.0.weight",
        "conv1b7.0.weight",
        "conv77.0.weight",
        "conv1a7.0.bias",
        "finalconv11.weight",
        "finalconv11.bias",
        "smm_blocks.2.ln_1.weight",
        "smm_blocks.0.self_attention.x_proj_weight",
    ):
        assert key in names, key
    assert "conv55.0.bias" not in names and not any("conv33" in n_ for n_ in names)
    hss = 3 * (_ss2d_params(c, k, n) + 2 * c)  # + ln_1
    local = sum(2 * (c * c + c) + c * kk * kk for kk in (5, 7))
    final = 3 * c * c + c
    assert sum(p.numel() for p in m.parameters()) == hss + local + final


def test_fan_out_initialisation():
    torch.manual_seed(0)
    m = LSSModule(64, depth=2, **SMALL)
    for conv, fan_out in [
        (m.conv1b5[0], 64),  # 1x1: 1*1*64
        (m.conv77[0], 49),  # depthwise 7x7: 7*7*64/64
        (m.finalconv11, 64),
        (m.smm_blocks[0].self_attention.conv2d, 9),  # SS2D depthwise 3x3 re-initialised too
    ]:
        w = conv.weight
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.08)
        assert abs(w.mean().item()) < 0.1 * math.sqrt(2 / fan_out)
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0


def test_gradients_reach_every_parameter_and_non_square_maps():
    m = LSSModule(8, depth=2, **SMALL)
    x = torch.randn(2, 4, 6, 8, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.pow(2).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert x.grad is not None


def test_kernel_size_options_and_errors():
    m = LSSModule(8, depth=2, kernel_sizes=(3,), **SMALL)
    assert m.finalconv11.in_channels == 16
    assert m(torch.randn(1, 4, 4, 8)).shape == (1, 4, 4, 8)
    assert LSSModule(8, depth=2, kernel_sizes=(), **SMALL).finalconv11.in_channels == 8
    for bad in [(4,), (5, 5), (0,)]:
        with pytest.raises(ConfigError):
            LSSModule(8, kernel_sizes=bad, **SMALL)
    with pytest.raises(InputError):
        m(torch.randn(1, 8, 4, 4))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_local_branch_gradients_equal_the_plain_composition(dtype):
    # on the CPU the branch runs in channels-last memory (float32: with the compiled InstanceNorm + SiLU kernel);
    # values and gradients stay those of the three modules applied in turn, computed in float64
    torch.manual_seed(0)
    m = LSSModule(16, depth=1, num_directions=2, scan_type="sweep").to(dtype)
    ref_m = copy.deepcopy(m).double()
    x = torch.randn(2, 16, 12, 20, dtype=dtype)
    g = torch.randn(2, 16, 12, 20, dtype=dtype)
    names = ("conv1b7", "conv77", "conv1a7")
    xa = x.clone().requires_grad_(True)
    params = [p for n, p in m.named_parameters() if n.startswith(names)]
    out = m.local_branch(xa, 7)
    got = torch.autograd.grad(out, [xa, *params], g)
    xb = x.double().requires_grad_(True)
    ref_params = [p for n, p in ref_m.named_parameters() if n.startswith(names)]
    ref = ref_m.conv1a7(ref_m.conv77(ref_m.conv1b7(xb)))
    want = torch.autograd.grad(ref, [xb, *ref_params], g.double())
    if dtype == torch.float32 and norm_act.load_library() is not None:
        assert out.is_contiguous(memory_format=torch.channels_last)  # the kernel path ran
    scale = max(w.abs().max().item() for w in want)  # conv1b7's bias gradient is 0 up to rounding (IN follows)
    tol = {"rtol": 1e-10, "atol": 1e-12 * scale} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5 * scale}
    torch.testing.assert_close(out.double(), ref, rtol=tol["rtol"], atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert len(got) == len(want) == 1 + len(params) == 6
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, **tol)
