"""The fast paths added for the MambaAD benchmark against plain formulations written here: the direction
gather/merge with hand-written adjoint backwards (gradcheck), and DirectionalSSM's batched-matmul projections with
in-place bias/softplus (outputs and gradients, with and without autograd)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmad.layers import SS2D
from ssmad.scans import direction_tables, gather_directions, merge_directions
from ssmad.ssm import selective_scan


@pytest.mark.parametrize(("name", "h", "w", "k"), [("hilbert", 3, 5, 8), ("zigzag", 4, 4, 4), ("sweep", 2, 3, 2)])
def test_gather_and_merge_backwards_pass_gradcheck(name: str, h: int, w: int, k: int) -> None:
    index, inverse = direction_tables(name, h, w, k)
    x = torch.randn(2, 3, h * w, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, k, 3, h * w, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gather_directions(t, index), (x,))
    assert torch.autograd.gradcheck(lambda t: merge_directions(t, inverse), (y,))
    # and the values are plain indexing
    seqs = gather_directions(x, index)
    for d in range(k):
        torch.testing.assert_close(seqs[:, d], x[..., index[d]], rtol=0, atol=0)
    expected = sum(y[:, d][..., inverse[d]] for d in range(k))
    torch.testing.assert_close(merge_directions(y, inverse), expected)


def _scan_by_einsum(m: SS2D, xs: torch.Tensor) -> torch.Tensor:
    """DirectionalSSM.scan_sequences as first written: einsum projections, bias and softplus inside the scan."""
    b, k, d, length = xs.shape
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, m.x_proj_weight)
    dts, bs, cs = torch.split(x_dbl, [m.dt_rank, m.d_state, m.d_state], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, m.dt_projs_weight)
    out = selective_scan(
        xs.reshape(b, k * d, length),
        dts.reshape(b, k * d, length),
        -torch.exp(m.A_logs),
        bs,
        cs,
        m.Ds,
        delta_bias=m.dt_projs_bias.reshape(-1),
        delta_softplus=True,
        backend="reference",
    )
    return out.reshape(b, k, d, length)


@pytest.mark.parametrize("grad", [False, True])
def test_scan_sequences_equal_the_einsum_formulation(grad: bool) -> None:
    m = SS2D(8, d_state=3, num_directions=8, scan_backend="reference").double()
    with torch.no_grad():
        m.dt_projs_bias.add_(torch.randn_like(m.dt_projs_bias))  # spread the softplus inputs
        m.dt_projs_bias[0, 0] = 25.0  # above softplus' linear threshold (20)
    xs = torch.randn(2, 8, 16, 7, dtype=torch.float64, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        fast = m.scan_sequences(xs)
        slow = _scan_by_einsum(m, xs)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    if grad:
        g = torch.randn_like(fast)
        params = [m.x_proj_weight, m.dt_projs_weight, m.dt_projs_bias, m.A_logs, m.Ds, xs]
        fast_grads = torch.autograd.grad(fast, params, g)
        slow_grads = torch.autograd.grad(slow, params, g)
        for a, b in zip(fast_grads, slow_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_inference_softplus_in_place_matches_functional_softplus() -> None:
    x = torch.linspace(-30, 30, 1001)
    y = x.clone()
    torch.ops.aten.softplus.out(y, 1, 20, out=y)
    torch.testing.assert_close(y, F.softplus(x), rtol=0, atol=0)
