"""SS2D and the HSS block against an independent per-direction computation (spec A.5 / A.6)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssmad.errors import ConfigError, InputError
from ssmad.layers import SS2D, HSSBlock, resolve_dt_rank
from ssmad.scans import order
from ssmad.ssm import backend_available, selective_scan

DIRECTIONS = {1: [0], 2: [0, 4], 4: [0, 1, 4, 5], 8: list(range(8))}  # spec A.6 / MambaAD forward_core


def _transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """T_k of spec A.6 on the last two dims of (B, D, H, W)."""
    k %= 4
    if k == 0:
        return x
    if k == 1:
        return x.transpose(2, 3)
    if k == 2:
        return torch.rot90(x, k=1, dims=(2, 3))
    return torch.rot90(x, k=1, dims=(2, 3)).transpose(2, 3)


def _untransform(y: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of T_k as spec A.6 lists it: transpose / rot90 k=3 / transpose then rot90 k=3."""
    k %= 4
    if k == 0:
        return y
    if k == 1:
        return y.transpose(2, 3)
    if k == 2:
        return torch.rot90(y, k=3, dims=(2, 3))
    return torch.rot90(y.transpose(2, 3), k=3, dims=(2, 3))


def _randomise(m: torch.nn.Module) -> None:
    """Break the symmetric init (equal A, D across directions; unit LayerNorm) so mix-ups would show."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name in ("A_logs", "dt_projs_bias"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif name == "Ds" or name.startswith("out_norm") or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g))


def _oracle(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """Every direction built with torch transforms, scanned alone with the reference scan, mapped back, summed."""
    b, h, w, _ = x.shape
    d, n = m.d_inner, m.d_state
    xz = F.linear(x, m.in_proj.weight, m.in_proj.bias)
    xx, z = xz[..., :d], xz[..., d:]
    pad = (m.conv2d.kernel_size[0] - 1) // 2
    xc = F.silu(F.conv2d(xx.permute(0, 3, 1, 2), m.conv2d.weight, m.conv2d.bias, padding=pad, groups=d))
    total = torch.zeros(b, d, h, w)
    for slot, k in enumerate(DIRECTIONS[m.num_directions]):
        frame = _transform(xc, k)
        hk, wk = frame.shape[-2:]
        perm = torch.from_numpy(order(m.scan_type, hk, wk))
        seq = frame.reshape(b, d, hk * wk)[..., perm]
        if k >= 4:
            seq = seq.flip(-1)
        x_dbl = torch.einsum("bdl,cd->bcl", seq, m.x_proj_weight[slot])
        dt_low, bs, cs = x_dbl[:, : m.dt_rank], x_dbl[:, m.dt_rank : m.dt_rank + n], x_dbl[:, m.dt_rank + n :]
        delta = torch.einsum("brl,dr->bdl", dt_low, m.dt_projs_weight[slot])
        rows = slice(slot * d, (slot + 1) * d)
        y = selective_scan(
            seq,
            delta,
            -torch.exp(m.A_logs[rows]),
            bs,
            cs,
            m.Ds[rows],
            delta_bias=m.dt_projs_bias[slot],
            delta_softplus=True,
            backend="reference",
        )
        if k >= 4:
            y = y.flip(-1)
        decoded = torch.zeros_like(y)
        decoded[..., perm] = y  # out[locs[j]] = seq[j]
        total = total + _untransform(decoded.view(b, d, hk, wk), k)
    y = F.layer_norm(total.permute(0, 2, 3, 1), (d,), m.out_norm.weight, m.out_norm.bias, m.out_norm.eps)
    y = y * F.silu(z)
    return F.linear(y, m.out_proj.weight, m.out_proj.bias)


@pytest.mark.parametrize("num_directions", [1, 2, 4, 8])
@pytest.mark.parametrize(("h", "w"), [(4, 4), (3, 5), (6, 2)])
def test_ss2d_equals_sum_of_individually_scanned_directions(num_directions: int, h: int, w: int) -> None:
    m = SS2D(8, d_state=4, num_directions=num_directions, scan_type="hilbert", bias=True, scan_backend="reference")
    _randomise(m)
    x = torch.randn(2, h, w, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _oracle(m, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scan_type", ["sweep", "scan", "zorder", "zigzag"])
def test_ss2d_other_curves_non_square(scan_type: str) -> None:
    m = SS2D(8, d_state=4, num_directions=8, scan_type=scan_type, scan_backend="reference")
    _randomise(m)
    x = torch.randn(1, 5, 3, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _oracle(m, x), rtol=1e-4, atol=1e-5)


def test_scan_curve_matters() -> None:
    torch.manual_seed(3)
    a = SS2D(8, d_state=4, num_directions=2, scan_type="hilbert", scan_backend="reference")
    b = SS2D(8, d_state=4, num_directions=2, scan_type="sweep", scan_backend="reference")
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 4, 4, 8)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x), atol=1e-4)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 6), (7, 1), (5, 3), (3, 5)])
def test_odd_shapes_and_table_cache(h: int, w: int) -> None:
    m = SS2D(6, d_state=2, num_directions=8, scan_backend="reference")
    for shape in [(h, w), (w, h), (h, w)]:
        x = torch.randn(2, *shape, 6)
        assert m(x).shape == x.shape


def test_gradients_reach_every_parameter_and_the_input() -> None:
    m = SS2D(8, d_state=4, num_directions=8, bias=True, scan_backend="reference")
    x = torch.randn(2, 3, 4, 8, requires_grad=True)
    (m(x) ** 2).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_parameter_names_and_shapes_follow_mambaad() -> None:
    m = SS2D(64, num_directions=8)  # stage-3 decoder width: d_inner 128, dt_rank 4, N 16
    shapes = {name: tuple(p.shape) for name, p in m.named_parameters()}
    assert shapes == {
        "x_proj_weight": (8, 36, 128),
        "dt_projs_weight": (8, 128, 4),
        "dt_projs_bias": (8, 128),
        "A_logs": (1024, 16),
        "Ds": (1024,),
        "in_proj.weight": (256, 64),
        "conv2d.weight": (128, 1, 3, 3),
        "conv2d.bias": (128,),
        "out_norm.weight": (128,),
        "out_norm.bias": (128,),
        "out_proj.weight": (64, 128),
    }
    assert all(not k.startswith("_tables") for k in m.state_dict())


def test_dt_rank_auto() -> None:
    assert [resolve_dt_rank("auto", c) for c in (512, 256, 128, 64, 40)] == [32, 16, 8, 4, 3]
    assert resolve_dt_rank(5, 64) == 5
    with pytest.raises(ConfigError):
        resolve_dt_rank(0, 64)


def test_bad_configuration_and_input() -> None:
    with pytest.raises(ConfigError):
        SS2D(8, num_directions=3)
    with pytest.raises(ConfigError):
        SS2D(8, scan_type="spiral")
    with pytest.raises(ConfigError):
        SS2D(8, d_conv=4)
    m = SS2D(8, d_state=2, scan_backend="reference")
    with pytest.raises(InputError, match="channels-last"):
        m(torch.randn(1, 8, 4, 4))
    with pytest.raises(InputError):
        m(torch.randn(8, 4, 4))


def test_hss_block_is_residual_with_drop_path() -> None:
    block = HSSBlock(8, drop_path=1.0, d_state=4, num_directions=4, scan_backend="reference")
    assert block.ln_1.eps == 1e-5
    _randomise(block.self_attention)
    with torch.no_grad():
        block.ln_1.weight.normal_()
        block.ln_1.bias.normal_()
    x = torch.randn(2, 3, 5, 8)
    with torch.no_grad():
        block.eval()
        expected = x + _oracle(block.self_attention, F.layer_norm(x, (8,), block.ln_1.weight, block.ln_1.bias, 1e-5))
        torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)
        block.train()  # drop_path = 1 drops the whole branch of every sample
        torch.testing.assert_close(block(x), x)
    assert isinstance(HSSBlock(8, drop_path=0.0, d_state=2).drop_path, torch.nn.Identity)
    assert math.isclose(HSSBlock(8, drop_path=0.25, d_state=2).drop_path.drop_prob, 0.25)


def test_float64_gradcheck_and_bfloat16_autocast() -> None:
    m = SS2D(4, d_state=2, num_directions=8, scan_backend="reference").double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-5, fast_mode=True)
    m32 = SS2D(8, d_state=4, num_directions=4, scan_backend="reference")
    x32 = torch.randn(2, 3, 5, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = m32(x32)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), m32(x32).detach(), rtol=0.05, atol=0.03)


@pytest.mark.skipif(not backend_available("cpu"), reason="no C++ compiler: the fused CPU path is absent")
@pytest.mark.parametrize(("scan_type", "num_directions", "h", "w"), [("hilbert", 8, 6, 6), ("zigzag", 4, 3, 5)])
def test_inference_fast_path_matches_the_oracle_and_the_autograd_path(
    scan_type: str, num_directions: int, h: int, w: int
) -> None:
    m = SS2D(12, d_state=4, num_directions=num_directions, scan_type=scan_type, bias=True, scan_backend="cpu")
    _randomise(m)
    x = torch.randn(2, h, w, 12)
    with torch.no_grad():
        assert m.use_fused(x)
        fast = m(x)
        expected = _oracle(m, x)
    slow = m.forward_core(m.act(m.conv(m.in_proj(x).chunk(2, dim=-1)[0])))  # gather, grouped scan, merge
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        scanned = m.scan(m.act(m.conv(m.in_proj(x).chunk(2, dim=-1)[0])))
    torch.testing.assert_close(scanned.flatten(1, 2), slow.detach().transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_fast_path_only_for_the_cpu_kernel() -> None:
    x = torch.randn(1, 4, 4, 8)
    with torch.no_grad():
        assert not SS2D(8, d_state=2, scan_backend="reference").use_fused(x)
        assert not SS2D(8, d_state=2, scan_backend="torch").use_fused(x)
    m = SS2D(8, d_state=2, scan_backend="auto")
    assert m.use_fused(x) == backend_available("cpu")  # training too: the fused kernel has its own backward
