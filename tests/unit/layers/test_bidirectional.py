"""ACMamba's RSAL and RSAL encoder against an independent two-scan computation (spec C.3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssmad.errors import ConfigError, InputError
from ssmad.layers import RSAL, RSALNetwork
from ssmad.ssm import backend_available, selective_scan


def _randomise(m: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(("A_logs", "dt_projs_bias")):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("Ds") or "norm" in name or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g))


def _oracle(m: RSAL, x: torch.Tensor) -> torch.Tensor:
    """Official-code layout: conv as a 3×3 depthwise Conv2d on an L × 1 map, then two separate scans."""
    batch, length, _ = x.shape
    d, n, r = m.d_inner, m.d_state, m.dt_rank
    xz = F.linear(x, m.in_proj.weight, m.in_proj.bias)
    xx, z = xz[..., :d], xz[..., d:]
    # a 3×3 kernel whose middle column is the 1-D kernel; the side columns only ever meet zero padding
    kernel = torch.randn(d, 1, 3, 3)
    kernel[..., 1] = m.conv1d.weight
    image = xx.permute(0, 2, 1).unsqueeze(-1)  # (B, d, L, 1)
    xc = F.silu(F.conv2d(image, kernel, m.conv1d.bias, padding=1, groups=d)).squeeze(-1)
    outs = []
    for slot, seq in enumerate((xc, xc.flip(-1))):
        x_dbl = torch.einsum("bdl,cd->bcl", seq, m.x_proj_weight[slot])
        delta = torch.einsum("brl,dr->bdl", x_dbl[:, :r], m.dt_projs_weight[slot])
        rows = slice(slot * d, (slot + 1) * d)
        outs.append(
            selective_scan(
                seq,
                delta,
                -torch.exp(m.A_logs[rows]),
                x_dbl[:, r : r + n],
                x_dbl[:, r + n :],
                m.Ds[rows],
                delta_bias=m.dt_projs_bias[slot],
                delta_softplus=True,
                backend="reference",
            )
        )
    y = (outs[0] + outs[1].flip(-1)).permute(0, 2, 1)
    y = F.layer_norm(y, (d,), m.out_norm.weight, m.out_norm.bias, m.out_norm.eps) * F.gelu(z)
    assert y.shape == (batch, length, d)
    return F.linear(y, m.out_proj.weight, m.out_proj.bias)


@pytest.mark.parametrize("length", [1, 2, 7, 16])
def test_rsal_equals_forward_plus_flipped_backward_scan(length: int) -> None:
    m = RSAL(8, d_state=4, bias=True, scan_backend="reference")
    _randomise(m)
    x = torch.randn(3, length, 8)
    with torch.no_grad():
        y = m(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, _oracle(m, x), rtol=1e-4, atol=1e-5)


def test_rsal_is_not_causal_but_sees_both_ends() -> None:
    m = RSAL(8, d_state=4, scan_backend="reference")
    x = torch.randn(1, 12, 8, requires_grad=True)
    m(x)[0, 5].sum().backward()
    # the backward scan makes position 5 depend on later regions far beyond the conv's reach
    assert x.grad[0, 11].abs().sum() > 0 and x.grad[0, 0].abs().sum() > 0


def test_rsal_conv_init_matches_official_kernel_distribution() -> None:
    m = RSAL(64, d_state=4)
    w = m.conv1d.weight
    assert w.shape == (128, 1, 3)
    assert w.abs().max() <= 1 / 3 and w.abs().max() > 0.3  # U(-1/3, 1/3): default for a 3×3 depthwise kernel
    assert m.conv1d.bias.abs().max() <= 1 / 3


def test_gradients_reach_every_parameter() -> None:
    net = RSALNetwork(10, 8, depth=2, d_state=4, scan_backend="reference")
    x = torch.randn(2, 9, 10, requires_grad=True)
    (net(x) ** 2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_network_has_no_residual_and_embeds_per_region() -> None:
    net = RSALNetwork(10, 8, depth=2, d_state=4, scan_backend="reference")
    for block in net.blocks:
        _randomise(block)
    x = torch.randn(2, 5, 10)
    with torch.no_grad():
        e = net.patch_embed
        h = F.layer_norm(F.gelu(F.linear(x, e.proj.weight, e.proj.bias)), (8,), e.norm.weight, e.norm.bias, 1e-5)
        for block in net.blocks:
            h = block.rsal(F.layer_norm(h, (8,), block.ln.weight, block.ln.bias, 1e-5))
        torch.testing.assert_close(net(x), h)
        # shuffling regions changes nothing per region in the embedding, but the SSM mixes along the sequence
        torch.testing.assert_close(net.patch_embed(x.flip(1)), net.patch_embed(x).flip(1))


def test_network_init_and_drop_path_schedule() -> None:
    torch.manual_seed(0)
    net = RSALNetwork(30, 64, depth=3, d_state=16, drop_path_rate=0.2)
    rsal = net.blocks[0].rsal
    for lin in (rsal.in_proj, rsal.out_proj):
        assert abs(lin.weight.std().item() - 0.02) < 0.002
    proj = net.patch_embed.proj.weight  # default init of a 1×1 conv: U(-1/sqrt(30), 1/sqrt(30))
    assert proj.abs().max() <= 1 / math.sqrt(30) and proj.std() > 0.1
    assert torch.all(net.patch_embed.proj.bias.abs() <= 1 / math.sqrt(30)) and net.patch_embed.proj.bias.abs().sum() > 0
    torch.testing.assert_close(rsal.out_norm.weight, torch.ones(128))
    torch.testing.assert_close(-torch.exp(rsal.A_logs), -torch.arange(1.0, 17.0).expand(256, 16))
    assert rsal.x_proj_weight.abs().max() <= 1 / math.sqrt(128)  # Linear default, not trunc_normal
    assert rsal.x_proj_weight.std() > 0.04
    assert isinstance(net.blocks[0].drop_path, torch.nn.Identity)
    assert [round(b.drop_path.drop_prob, 6) for b in net.blocks[1:]] == [0.1, 0.2]


def test_bad_input_and_config() -> None:
    net = RSALNetwork(10, 8, d_state=4, scan_backend="reference")
    with pytest.raises(InputError, match="unsqueeze"):
        net(torch.randn(5, 10))
    with pytest.raises(InputError):
        net(torch.randn(1, 5, 11))
    with pytest.raises(ConfigError):
        RSAL(8, d_conv=2)


def test_float64_gradcheck() -> None:
    m = RSAL(4, d_state=2, scan_backend="reference").double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.skipif(not backend_available("cpu"), reason="no C++ compiler: the fused CPU path is absent")
@pytest.mark.parametrize("length", [1, 9, 70])
def test_rsal_inference_fast_path_matches_the_oracle(length: int) -> None:
    m = RSAL(10, d_state=4, bias=True, scan_backend="cpu")  # d_inner = 20: two full channel blocks and a tail
    _randomise(m)
    x = torch.randn(2, length, 10)
    with torch.no_grad():
        assert m.use_fused(x)
        fast = m(x)
        expected = _oracle(m, x)
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the kernel's sums against the composition's (gather, grouped scan, merge)
        inner = m.act(m.conv(m.in_proj(x).chunk(2, dim=-1)[0]))
        torch.testing.assert_close(m.scan(inner), m.forward_core(inner).transpose(1, 2), rtol=1e-5, atol=1e-6)
