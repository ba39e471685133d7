"""HSS-v2 (SSD2D): every Mamba-3 switch and both paths against oracles written here, the kernels against each other,
the directional gather/merge, gradients, and bad configurations."""

from __future__ import annotations

import math

import pytest
import torch

from ssmad.errors import ConfigError, InputError
from ssmad.layers.hss2 import SSD2D, HSSv2Block, directional_ssd, matrix_path, sequence_ssd
from ssmad.scans import direction_tables
from ssmad.ssm import ssd_cpu


@pytest.fixture(autouse=True)
def _float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _inputs(b=2, length=23, heads=3, p=4, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, heads, p, generator=g)
    dt = torch.rand(b, length, heads, generator=g) * 0.5 + 0.05
    A = -torch.rand(heads, generator=g) - 0.2
    B = torch.randn(b, length, 1, n, generator=g)
    C = torch.randn(b, length, 1, n, generator=g)
    lam = torch.rand(b, length, heads, generator=g)
    theta = torch.randn(b, length, 1, n // 2, generator=g)
    return x, dt, A, B, C, lam, theta


def _oracle(x, dt, A, B, C, lam=None, theta=None):
    """Sequential loop with a complex state: pair k of the N state dims is b_k + i b_{k+N/2}.

    h_t = α_t e^{-iθ_t} h_{t-1} + β_t e^{-iθ_t} u_{t-1} + γ_t u_t,  u_t = x_t B_t, α_t = exp(Δ_t A), γ_t = λ_t Δ_t,
    β_t = (1 − λ_t) Δ_t α_t (λ = 1, θ = 0 when switched off);  y_t = Re(h_t · conj(C_t)).
    """
    b, length, heads, p = x.shape
    half = B.shape[-1] // 2
    y = torch.zeros_like(x)
    for i in range(b):
        for h in range(heads):
            state = torch.zeros(p, half, dtype=torch.complex128)
            prev = torch.zeros(p, half, dtype=torch.complex128)
            for t in range(length):
                bc = torch.complex(B[i, t, 0, :half], B[i, t, 0, half:])
                cc = torch.complex(C[i, t, 0, :half], C[i, t, 0, half:])
                d, a = dt[i, t, h], torch.exp(dt[i, t, h] * A[h])
                turn = torch.exp(-1j * theta[i, t, 0]) if theta is not None else torch.ones(half)
                cur = x[i, t, h][:, None] * bc[None]
                lt = lam[i, t, h] if lam is not None else 1.0
                state = a * turn * state + (1 - lt) * d * a * turn * prev + lt * d * cur
                prev = cur
                y[i, t, h] = (state * cc.conj()[None]).real.sum(-1)
    return y


@pytest.mark.parametrize("kernel", ["reference", "ssd", "selective"])
@pytest.mark.parametrize(("trap", "rot"), [(False, False), (True, False), (False, True), (True, True)])
def test_sequence_ssd_matches_the_complex_oracle(kernel: str, trap: bool, rot: bool) -> None:
    x, dt, A, B, C, lam, theta = _inputs()
    got = sequence_ssd(
        x, dt, A, B, C, lam=lam if trap else None, theta=theta if rot else None, chunk_size=8, kernel=kernel
    )
    ref = _oracle(x, dt, A, B, C, lam if trap else None, theta if rot else None)
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-10)


def test_each_switch_changes_the_recurrence() -> None:
    """The oracle itself is not blind to the switches (a trapezoid or a rotation that did nothing would pass)."""
    x, dt, A, B, C, lam, theta = _inputs()
    plain = _oracle(x, dt, A, B, C)
    assert not torch.allclose(plain, _oracle(x, dt, A, B, C, lam=lam), atol=1e-3)
    assert not torch.allclose(plain, _oracle(x, dt, A, B, C, theta=theta), atol=1e-3)


def test_gradients_of_the_selective_kernel_match_the_reference() -> None:
    x, dt, A, B, C, lam, theta = _inputs(length=11)
    leaves = [t.clone().requires_grad_() for t in (x, dt, B, C, lam, theta)]
    grads = []
    for kernel in ("reference", "selective", "ssd"):
        for t in leaves:
            t.grad = None
        xx, dd, bb, cc, ll, th = leaves
        sequence_ssd(xx, dd, A, bb, cc, lam=ll, theta=th, chunk_size=4, kernel=kernel).square().sum().backward()
        grads.append([t.grad.clone() for t in leaves])
    for other in grads[1:]:
        for g_ref, g in zip(grads[0], other, strict=True):
            assert torch.allclose(g, g_ref, rtol=1e-7, atol=1e-9)


def test_matrix_path_is_the_uniform_noncausal_matrix_form() -> None:
    x, dt, _, B, C, _, _ = _inputs()
    length = x.shape[1]
    got = matrix_path(x, dt, B, C)
    # the L × L form written out: y_i = Σ_j (C_i · B_j) Δ_j x_j / L
    scores = torch.einsum("bin,bjn->bij", C[:, :, 0], B[:, :, 0]) / length
    ref = torch.einsum("bij,bjh,bjhp->bihp", scores, dt, x)
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-12)
    base = torch.randn_like(x)
    assert torch.allclose(matrix_path(x, dt, B, C, add_to=base), base + ref, rtol=1e-12, atol=1e-12)


def test_matrix_path_with_groups_serves_each_group_its_heads() -> None:
    x, dt, _, _, _, _, _ = _inputs(heads=4)
    g = torch.Generator().manual_seed(3)
    B, C = torch.randn(2, x.shape[1], 2, 6, generator=g), torch.randn(2, x.shape[1], 2, 6, generator=g)
    base = torch.randn_like(x)
    got = matrix_path(x, dt, B, C, add_to=base)
    for h in range(4):  # heads 0, 1 read group 0; heads 2, 3 group 1
        ref_h = matrix_path(
            x[:, :, h : h + 1], dt[:, :, h : h + 1], B[:, :, h // 2 : h // 2 + 1], C[:, :, h // 2 : h // 2 + 1]
        )
        assert torch.allclose(got[:, :, h : h + 1], base[:, :, h : h + 1] + ref_h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 4])
def test_directional_ssd_is_the_sum_of_scans_along_each_order(k) -> None:
    x, dt, A, B, C, lam, theta = _inputs(b=1, length=12)
    index, inverse = direction_tables("hilbert", 3, 4, k)
    got = directional_ssd(x, dt, A, B, C, index, inverse, lam=lam, theta=theta, kernel="reference")
    ref = torch.zeros_like(x)
    for d in range(k):
        order = index[d].long()
        yk = _oracle(x[:, order], dt[:, order], A, B[:, order], C[:, order], lam[:, order], theta[:, order])
        ref[:, order] += yk  # step t of direction k belongs to raster position order[t]
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-10)


def _layer(**kw) -> SSD2D:
    torch.manual_seed(0)
    base = dict(d_model=8, d_state=4, headdim=4, num_directions=2, scan_backend="reference")
    base.update(kw)
    return SSD2D(**base)


def test_layer_shapes_and_every_switch_changes_the_output() -> None:
    x = torch.randn(2, 4, 5, 8)
    full = _layer()
    out = full(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    for switch in ("matrix_path", "recurrent_path", "trapezoid", "rotary", "bc_norm"):
        other = _layer(**{switch: False})
        # copy the shared parameters so that only the switch differs
        own = other.state_dict()
        shared = {k: v for k, v in full.state_dict().items() if k in own and own[k].shape == v.shape}
        other.load_state_dict(shared, strict=False)
        y = other(x)
        assert y.shape == x.shape
        assert not torch.allclose(y, out, atol=1e-6), switch
    assert not torch.allclose(full(x, num_directions=8), out, atol=1e-6)  # the direction count is used


def test_layer_kernels_agree_and_block_is_residual() -> None:
    x = torch.randn(1, 4, 4, 8)
    ref = _layer()
    fast = _layer(scan_backend="selective")
    fast.load_state_dict(ref.state_dict())
    assert torch.allclose(ref(x), fast(x), rtol=1e-8, atol=1e-10)
    blk = HSSv2Block(8, d_state=4, headdim=4, num_directions=2)
    with torch.no_grad():
        blk.ssd.out_proj.weight.zero_()
    assert torch.equal(blk(x), x)


@pytest.mark.parametrize("d_conv", [3, 0])
def test_inference_without_autograd_equals_the_autograd_forward(d_conv: int) -> None:
    # without autograd the layer overwrites its fresh activations in place; the values must not change, nor the input
    layer = _layer(d_conv=d_conv)
    x = torch.randn(2, 4, 5, 8)
    kept = x.clone()
    with_grad = layer(x)
    assert with_grad.requires_grad
    with torch.no_grad():
        without = layer(x)
    torch.testing.assert_close(without, with_grad.detach(), rtol=0, atol=0)
    assert torch.equal(x, kept)


def test_bad_configuration_and_input() -> None:
    with pytest.raises(ConfigError, match="headdim"):
        SSD2D(8, headdim=5)
    with pytest.raises(ConfigError, match="at least one"):
        SSD2D(8, headdim=4, recurrent_path=False, matrix_path=False)
    with pytest.raises(ConfigError, match="even"):
        SSD2D(8, headdim=4, d_state=5)
    with pytest.raises(ConfigError, match="scan_backend"):
        SSD2D(8, headdim=4, scan_backend="fast")
    with pytest.raises(InputError, match="channels-last"):
        _layer()(torch.randn(1, 8, 4, 4))
    assert math.isclose(_layer().D.detach()[0].item(), 1.0)


def test_auto_kernel_prefers_the_ssd_kernel_and_falls_back(monkeypatch):
    import ssmad.layers.hss2 as hss2

    cpu = torch.device("cpu")
    monkeypatch.setattr(hss2.ssd_cpu, "is_available", lambda: True)
    assert hss2.resolve_kernel("auto", cpu) == "ssd"
    monkeypatch.setattr(hss2.ssd_cpu, "is_available", lambda: False)  # only the selective-scan kernel builds
    monkeypatch.setattr(hss2, "backend_available", lambda name, device: True)
    assert hss2.resolve_kernel("auto", cpu) == "selective"
    monkeypatch.setattr(hss2, "backend_available", lambda name, device: False)  # no compiler at all
    assert hss2.resolve_kernel("auto", cpu) == "ssd"
    assert hss2.resolve_kernel("selective", cpu) == "selective"


needs_kernel = pytest.mark.skipif(not ssd_cpu.is_available(), reason="no C++ compiler for the ssd_scan CPU kernel")


@needs_kernel
@pytest.mark.parametrize(
    ("k", "hw", "p", "n", "switches"),
    [
        (1, (5, 7), 16, 16, ("lam", "theta")),  # the P = N = 16 specialisation, non-square map
        (2, (4, 4), 16, 16, ()),
        (4, (6, 3), 3, 6, ("lam",)),  # runtime sizes
        (8, (5, 5), 16, 16, ("lam", "theta")),
        (8, (2, 9), 4, 6, ("theta",)),
    ],
)
def test_fused_directional_inference_equals_the_composed_path(k, hw, p, n, switches, monkeypatch) -> None:
    # without gradients on a CPU, directional_ssd runs the kernel's directional forward (x read and outputs summed
    # in raster order); the composition of gathers, sequence scans and scatter (the reference kernel) is the oracle
    length = hw[0] * hw[1]
    x, dt, A, B, C, lam, theta = _inputs(b=2, length=length, heads=10, p=p, n=n, seed=k)
    extra = {"lam": lam if "lam" in switches else None, "theta": theta if "theta" in switches else None}
    index, inverse = direction_tables("hilbert", *hw, k)
    ref = directional_ssd(x, dt, A, B, C, index, inverse, **extra, kernel="reference")
    calls = []
    real = ssd_cpu.ssd_scan_cpu_directional
    monkeypatch.setattr(ssd_cpu, "ssd_scan_cpu_directional", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with torch.no_grad():
        got = directional_ssd(x, dt, A, B, C, index, inverse, **extra, kernel="auto")
    assert calls == [1]  # the fused path ran
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-10)
    got32 = real(x.float(), _gather(dt, index).float(), A.float(), *_seq_bc(B, C, extra["theta"], index), index,
                 trapezoid_lambda=None if extra["lam"] is None else _gather(extra["lam"], index))  # fmt: skip
    assert got32.dtype == torch.float32
    assert torch.allclose(got32.double(), ref, rtol=1e-4, atol=1e-4)


def _gather(t, index):
    k, length = index.shape
    return t[:, index.reshape(-1).long()].reshape(t.shape[0] * k, length, *t.shape[2:])


def _seq_bc(B, C, theta, index):
    Bk, Ck = _gather(B, index).float(), _gather(C, index).float()
    if theta is None:
        return Bk, Ck
    from ssmad.layers.hss2 import rotate_pairs

    phi = torch.cumsum(_gather(theta, index), dim=1).float()
    return rotate_pairs(Bk, phi), rotate_pairs(Ck, phi)


@needs_kernel
def test_gradients_take_the_composed_path() -> None:
    x, dt, A, B, C, lam, theta = _inputs(b=1, length=12)
    index, inverse = direction_tables("hilbert", 3, 4, 2)
    x.requires_grad_(True)
    y = directional_ssd(x, dt, A, B, C, index, inverse, lam=lam, theta=theta, kernel="auto")
    (g,) = torch.autograd.grad(y.sum(), x)
    ref = directional_ssd(x, dt, A, B, C, index, inverse, lam=lam, theta=theta, kernel="reference")
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g, g_ref, rtol=1e-9, atol=1e-10)


@needs_kernel
def test_directional_kernel_rejects_bad_orders() -> None:
    x, dt, A, B, C, _, _ = _inputs(b=1, length=6)
    order = torch.arange(6).unsqueeze(0)
    with pytest.raises(ValueError, match="outside"):
        ssd_cpu.ssd_scan_cpu_directional(x, dt, A, B, C, order + 1)
    with pytest.raises(ValueError, match="do not fit"):
        ssd_cpu.ssd_scan_cpu_directional(x, dt, A, B, C, torch.arange(6).repeat(2, 1))
