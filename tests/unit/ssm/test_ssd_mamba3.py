"""Mamba-3 switches of the SSD scan against sequential oracles written here: trapezoid rule and rotary state."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssmad.errors import InputError
from ssmad.ssm import ssd_rotary, ssd_scan, ssd_scan_ref
from ssmad.ssm.ssd_mamba3 import rotate_pairs

from .test_ssd import F64, assert_rel, make_ssd


def trapezoid_loop(x, dt, A, B, C, lam, init):
    """Scalar loop of h_t = α h_{t-1} + β x_{t-1} B_{t-1} + γ x_t B_t, y_t = h_t · C_t (dt final, no D/z)."""
    batch, length, heads, headdim = x.shape
    groups, dstate = B.shape[2], B.shape[3]
    out = torch.zeros(batch, length, heads, headdim, dtype=F64)
    last = torch.zeros(batch, heads, headdim, dstate, dtype=F64)
    for b in range(batch):
        for h in range(heads):
            g = h // (heads // groups)
            for p in range(headdim):
                s = [float(init[b, h, p, n]) for n in range(dstate)]
                for t in range(length):
                    d, la = float(dt[b, t, h]), float(lam[b, t, h])
                    alpha = math.exp(d * float(A[h]))
                    gamma, beta = la * d, (1.0 - la) * d * alpha
                    y = 0.0
                    for n in range(dstate):
                        prev = float(x[b, t - 1, h, p]) * float(B[b, t - 1, g, n]) if t > 0 else 0.0
                        s[n] = alpha * s[n] + beta * prev + gamma * float(x[b, t, h, p]) * float(B[b, t, g, n])
                        y += s[n] * float(C[b, t, g, n])
                    out[b, t, h, p] = y
                last[b, h, p] = torch.tensor(s, dtype=F64)
    return out, last


@pytest.mark.parametrize(("length", "chunk"), [(1, 16), (21, 8), (40, 16)])
def test_trapezoid_matches_sequential_oracle(length, chunk):
    t = make_ssd(batch=2, length=length, heads=4, headdim=2, groups=2, dstate=3, seed=length, requires_grad=False)
    lam = torch.rand(2, length, 4, dtype=F64)
    init = torch.randn(2, 4, 2, 3, dtype=F64)
    dt = F.softplus(t["dt"] + t["dt_bias"])
    y_loop, h_loop = trapezoid_loop(t["x"], dt, t["A"], t["B"], t["C"], lam, init)
    for backend in ("torch", "reference"):
        y, h = ssd_scan(
            t["x"], t["dt"], t["A"], t["B"], t["C"], dt_bias=t["dt_bias"], dt_softplus=True, initial_states=init,
            trapezoid_lambda=lam, chunk_size=chunk, return_final_states=True, backend=backend,
        )  # fmt: skip
        assert_rel(y, y_loop, 1e-12, f"{backend} y")
        assert_rel(h, h_loop, 1e-12, f"{backend} state")


def test_trapezoid_gradients_match_reference():
    t = make_ssd(length=29, seed=5)
    lam = torch.rand(2, 29, 4, dtype=F64).requires_grad_(True)
    grads = {}
    for backend in ("torch", "reference"):
        y = ssd_scan(**t, dt_softplus=True, trapezoid_lambda=lam, chunk_size=16, backend=backend)
        weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
        grads[backend] = torch.autograd.grad((y * weights).sum(), [*t.values(), lam])
    for name, g, g_ref in zip([*t, "lam"], grads["torch"], grads["reference"], strict=True):
        assert_rel(g, g_ref, what=f"grad {name}")


def test_trapezoid_with_lambda_one_is_the_mamba2_rule():
    t = make_ssd(length=19, requires_grad=False)
    plain = ssd_scan(**t, dt_softplus=True)
    trap = ssd_scan(**t, dt_softplus=True, trapezoid_lambda=torch.ones(2, 19, 4, dtype=F64))
    assert_rel(trap, plain, 1e-12, "y")
    half = ssd_scan(**t, dt_softplus=True, trapezoid_lambda=torch.full((2, 19, 4), 0.5, dtype=F64))
    assert (half - plain).abs().max() > 1e-3  # the switch changes something


def complex_state_loop(x, dt, A, B, C, theta):
    """Complex diagonal state: h_t = exp(dt A + i θ_t) h_{t-1} + dt x_t b_t, y_t = Re(h_t · conj(c_t)).

    ``b_t``, ``c_t`` are the pairs (2k, 2k+1) of B, C read as complex numbers; theta (b, L, H, N/2). Returns y and
    the final complex state (b, H, P, N/2).
    """
    batch, length, heads, headdim = x.shape
    groups = B.shape[2]
    bc = torch.complex(B[..., 0::2], B[..., 1::2])
    cc = torch.complex(C[..., 0::2], C[..., 1::2])
    h = torch.zeros(batch, heads, headdim, B.shape[3] // 2, dtype=torch.complex128)
    ys = []
    for t in range(length):
        for head in range(heads):
            g = head // (heads // groups)
            rot = torch.exp(dt[:, t, head, None] * A[head] + 1j * theta[:, t, head])  # (b, N/2)
            drive = dt[:, t, head, None, None] * x[:, t, head, :, None] * bc[:, t, g, None, :]
            h[:, head] = rot[:, None, :] * h[:, head] + drive
        hg = h.reshape(batch, groups, heads // groups, headdim, -1)
        ys.append(torch.einsum("bgrpk,bgk->bgrp", hg, cc[:, t].conj()).real.reshape(batch, heads, headdim))
    return torch.stack(ys, dim=1), h


@pytest.mark.parametrize(("groups", "length", "chunk"), [(4, 23, 8), (1, 17, 64), (2, 1, 16)])
def test_rotary_equals_complex_state_recurrence(groups, length, chunk):
    t = make_ssd(batch=2, length=length, heads=4, headdim=2, groups=groups, dstate=6, seed=7, requires_grad=False)
    theta = torch.randn(2, length, 4, 3, dtype=F64)
    dt = F.softplus(t["dt"] + t["dt_bias"])
    y_loop, h_loop = complex_state_loop(t["x"], dt, t["A"], t["B"], t["C"], theta)
    Br, Cr = ssd_rotary(t["B"], t["C"], theta)
    assert Br.shape == (2, length, 4, 6)
    y, h = ssd_scan(
        t["x"], t["dt"], t["A"], Br, Cr, dt_bias=t["dt_bias"], dt_softplus=True, chunk_size=chunk,
        return_final_states=True,
    )  # fmt: skip
    assert_rel(y, y_loop, 1e-12, "y")
    # the scan's state lives in the frame rotated by -Φ; turning it back by Φ_{L-1} gives the complex state
    h_true = rotate_pairs(h, theta.sum(dim=1)[:, :, None, :])
    assert_rel(h_true, torch.view_as_real(h_loop).flatten(-2), 1e-12, "state")


def test_rotary_changes_the_output_and_zero_angles_change_nothing():
    t = make_ssd(length=12, dstate=4, requires_grad=False)
    x, dt, A, B, C = (t[k] for k in "x dt A B C".split())
    plain = ssd_scan(x, dt, A, B, C, dt_softplus=True)
    zero = ssd_scan(x, dt, A, *ssd_rotary(B, C, torch.zeros(2, 12, 4, 2, dtype=F64)), dt_softplus=True)
    assert_rel(zero, plain, 1e-14, "y")
    turned = ssd_scan(x, dt, A, *ssd_rotary(B, C, torch.ones(2, 12, 4, 2, dtype=F64)), dt_softplus=True)
    assert (turned - plain).abs().max() > 1e-2


def test_rotary_gradients_flow_to_theta():
    t = make_ssd(batch=1, length=6, heads=2, headdim=2, groups=1, dstate=4, seed=11)
    theta = torch.randn(1, 6, 2, 2, dtype=F64, requires_grad=True)

    def fn(theta, B, C):
        Br, Cr = ssd_rotary(B, C, theta)
        return ssd_scan(t["x"], t["dt"], t["A"], Br, Cr, dt_softplus=True, chunk_size=4)

    assert torch.autograd.gradcheck(fn, (theta, t["B"], t["C"]), fast_mode=True)


@pytest.mark.parametrize(
    ("B", "theta", "message"),
    [
        (torch.randn(1, 3, 2, 5), torch.randn(1, 3, 2, 2), "even"),
        (torch.randn(1, 3, 2, 4), torch.randn(1, 3, 3, 2), "multiple of"),
        (torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4), "theta must be"),
    ],
)
def test_rotary_bad_shapes(B, theta, message):
    with pytest.raises(InputError, match=message):
        ssd_rotary(B, B.clone(), theta)


def test_reference_rejects_a_lambda_of_the_wrong_shape():
    # no silent broadcasting of a per-head lambda
    t = make_ssd(length=5, requires_grad=False)
    with pytest.raises(InputError, match="trapezoid_lambda"):
        ssd_scan_ref(**t, trapezoid_lambda=torch.rand(2, 5, 1, dtype=F64))
