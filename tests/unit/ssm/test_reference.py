"""The reference scan against hand-computed values and an independent scalar loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssmad.ssm import selective_scan, selective_scan_ref

from .conftest import make_inputs


def scalar_loop(u, delta, A, B, C, D, z, delta_bias, softplus):
    """Independent per-channel, per-state Python loop (float64), no tensor algebra."""
    batch, dim, length = u.shape
    dstate = A.shape[1]
    groups = B.shape[1] if B.dim() == 4 else 1
    per = dim // groups
    out = torch.zeros(batch, dim, length, dtype=torch.float64)
    last = torch.zeros(batch, dim, dstate, dtype=torch.float64)
    for b in range(batch):
        for d in range(dim):
            g = d // per
            h = [0.0] * dstate
            for t in range(length):
                dt = float(delta[b, d, t]) + (float(delta_bias[d]) if delta_bias is not None else 0.0)
                if softplus:
                    dt = math.log1p(math.exp(dt)) if dt <= 20 else dt
                y = 0.0
                for n in range(dstate):
                    bb = float(B[b, g, n, t] if B.dim() == 4 else B[b, n, t])
                    cc = float(C[b, g, n, t] if C.dim() == 4 else C[b, n, t])
                    h[n] = math.exp(dt * float(A[d, n])) * h[n] + dt * bb * float(u[b, d, t])
                    y += cc * h[n]
                if D is not None:
                    y += float(D[d]) * float(u[b, d, t])
                if z is not None:
                    zz = float(z[b, d, t])
                    y *= zz / (1.0 + math.exp(-zz))
                out[b, d, t] = y
            last[b, d] = torch.tensor(h, dtype=torch.float64)
    return out, last


def test_spec_tiny_vector_every_backend():
    # spec D.2: one channel, N=1, A=-1, B=C=1, D=0, delta=1, u=[1,0,0] -> [1, e^-1, e^-2]
    u = torch.tensor([[[1.0, 0.0, 0.0]]])
    delta = torch.ones(1, 1, 3)
    A = -torch.ones(1, 1)
    B = torch.ones(1, 1, 3)
    C = torch.ones(1, 1, 3)
    D = torch.zeros(1)
    expected = torch.tensor([1.0, math.exp(-1), math.exp(-2)])
    from ssmad.ssm import available_backends

    for backend in available_backends("cpu"):
        out = selective_scan(u, delta, A, B, C, D, backend=backend)
        torch.testing.assert_close(out[0, 0], expected, rtol=1e-6, atol=1e-7, msg=f"backend {backend}")


@pytest.mark.parametrize("groups", [None, 1, 2, 4])
@pytest.mark.parametrize("softplus", [False, True])
def test_reference_equals_scalar_loop(groups, softplus):
    x = make_inputs(batch=2, dim=4, dstate=3, length=7, groups=groups, dtype=torch.float64, requires_grad=False)
    out, last = selective_scan_ref(*x.args(), delta_softplus=softplus, return_last_state=True)
    exp_out, exp_last = scalar_loop(*x.args(), softplus)
    torch.testing.assert_close(out, exp_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last, exp_last, rtol=1e-12, atol=1e-12)


def test_reference_low_precision_keeps_fp32_recurrence():
    x = make_inputs(dtype=torch.float32, requires_grad=False)
    ref32 = selective_scan_ref(*x.args(), delta_softplus=True)
    for dt in (torch.float16, torch.bfloat16):
        args = [None if t is None else t.to(dt) for t in x.args()]
        out = selective_scan_ref(*args, delta_softplus=True)
        assert out.dtype == dt
        # inputs rounded to dt, recurrence in fp32: error of the order of dt's epsilon, not accumulated
        tol = 3e-2 if dt == torch.bfloat16 else 5e-3
        torch.testing.assert_close(out.float(), ref32, rtol=tol, atol=tol)


def test_bad_shapes_raise_clear_errors():
    x = make_inputs(requires_grad=False)
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(x.u, x.delta, x.A[:, :2].T, x.B, x.C)
    with pytest.raises(ValueError, match="grouped"):
        selective_scan(x.u, x.delta, x.A, x.B[:, :, :, :3], x.C)
    with pytest.raises(ValueError, match="unknown selective-scan backend"):
        selective_scan(x.u, x.delta, x.A, x.B, x.C, backend="nope")


def test_softplus_threshold_matches_torch():
    # large delta: softplus(x) == x above torch's threshold 20
    u = torch.ones(1, 1, 2)
    delta = torch.tensor([[[25.0, -30.0]]])
    A = -torch.ones(1, 1) * 0.01
    B = torch.ones(1, 1, 2)
    C = torch.ones(1, 1, 2)
    out = selective_scan_ref(u, delta, A, B, C, delta_softplus=True)
    dt = F.softplus(delta)
    h0 = dt[0, 0, 0]
    h1 = torch.exp(dt[0, 0, 1] * -0.01) * h0 + dt[0, 0, 1]
    torch.testing.assert_close(out[0, 0], torch.stack([h0, h1]))
