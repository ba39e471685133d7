"""Multi-direction scan: the composition against a loop written here, and the fused CPU kernel against both."""

from __future__ import annotations

import math

import pytest
import torch

from ssmad.scans import direction_tables
from ssmad.ssm import backend_available, directional_scan, directional_scan_ref

needs_kernel = pytest.mark.skipif(not backend_available("cpu"), reason="no C++ compiler: the cpu backend is absent")


def make_case(batch=2, length=11, dim=5, k=3, rank=2, dstate=4, *, dtype=torch.float64, seed=0, with_d=True):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    x = rnd(batch, length, dim)
    xdbl = rnd(batch, length, k, rank + 2 * dstate, scale=0.7)
    dt_weight = rnd(k, dim, rank, scale=0.5)
    dt_bias = rnd(k, dim, scale=0.5) - 1.0
    A = -(torch.rand(k, dim, dstate, generator=g) * 2 + 0.2).to(dtype)
    D = rnd(k, dim) if with_d else None
    index = torch.stack([torch.randperm(length, generator=g) for _ in range(k)])
    return x, xdbl, dt_weight, dt_bias, A, D, index


def loop_oracle(x, xdbl, dt_weight, dt_bias, A, D, index):
    """Scalar loops over batch, direction, channel and step: the definition in the module docstring."""
    batch, length, dim = x.shape
    k, _, rank = dt_weight.shape
    dstate = A.shape[-1]
    y = torch.zeros(batch, length, dim, dtype=torch.float64)
    for b in range(batch):
        for i in range(k):
            for d in range(dim):
                h = [0.0] * dstate
                for t in range(length):
                    p = int(index[i, t])
                    row = xdbl[b, p, i].tolist()
                    raw = float(dt_bias[i, d]) + sum(float(dt_weight[i, d, r]) * row[r] for r in range(rank))
                    dt = raw if raw > 20 else math.log1p(math.exp(raw))
                    u = float(x[b, p, d])
                    out = 0.0
                    for n in range(dstate):
                        h[n] = math.exp(dt * float(A[i, d, n])) * h[n] + dt * row[rank + n] * u
                        out += row[rank + dstate + n] * h[n]
                    if D is not None:
                        out += float(D[i, d]) * u
                    y[b, p, d] += out
    return y


@pytest.mark.parametrize("with_d", [True, False])
def test_composition_matches_the_loop_definition(with_d: bool) -> None:
    args = make_case(with_d=with_d)
    torch.testing.assert_close(directional_scan_ref(*args), loop_oracle(*args), rtol=1e-10, atol=1e-10)


@needs_kernel
@pytest.mark.parametrize(
    "shape",
    [
        dict(batch=2, length=37, dim=13, k=4, rank=3, dstate=16),  # tail lanes (13 = 8 + 5), N = 16 fast path
        dict(batch=1, length=64, dim=16, k=8, rank=4, dstate=5),  # generic (odd) N
        dict(batch=2, length=1, dim=8, k=2, rank=1, dstate=16),  # a single position
        dict(batch=3, length=20, dim=3, k=1, rank=6, dstate=2),  # fewer channels than lanes, rank not a multiple of 4
        dict(batch=1, length=12, dim=8, k=2, rank=2, dstate=70),  # a large state: heap buffers, no size cap
    ],
)
def test_fused_kernel_matches_composition_float64(shape: dict) -> None:
    args = make_case(**shape)
    with torch.no_grad():
        fused = directional_scan(*args, backend="cpu")
        ref = directional_scan_ref(*args)
    torch.testing.assert_close(fused, ref, rtol=1e-10, atol=1e-10)


@needs_kernel
@pytest.mark.parametrize("with_d", [True, False])
def test_fused_kernel_matches_composition_float32(with_d: bool) -> None:
    args = make_case(batch=2, length=300, dim=24, k=8, rank=5, dstate=16, dtype=torch.float32, with_d=with_d)
    with torch.no_grad():
        fused = directional_scan(*args, backend="cpu")
    ref = directional_scan_ref(*(None if t is None else t.double() for t in args[:-1]), args[-1])
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused.double(), ref, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_underflowing_states_stay_exact_and_the_callers_float_mode_is_restored() -> None:
    # steps ~ softplus(8) ~ 8 and A ~ -10 make every decay ~ e^-80: states sink into the denormal range, which the
    # kernel flushes to zero; the outputs must not notice, and torch's own arithmetic must still keep denormals.
    x, xdbl, dt_weight, dt_bias, A, D, index = make_case(length=200, dim=8, k=2, dtype=torch.float32)
    dt_bias = dt_bias + 9.0
    A = A * 5.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the kernel then runs on this very thread
    try:
        with torch.no_grad():
            fused = directional_scan(x, xdbl, dt_weight, dt_bias, A, D, index, backend="cpu")
        tiny = torch.tensor([1e-39], dtype=torch.float32)
        assert (tiny * 1.0).item() != 0.0  # not flushed: the kernel restored the mode
    finally:
        torch.set_num_threads(threads)
    ref = directional_scan_ref(*(t.double() for t in (x, xdbl, dt_weight, dt_bias, A, D)), index)
    torch.testing.assert_close(fused.double(), ref, rtol=1e-4, atol=1e-5)


def test_gradients_pass_gradcheck_on_the_default_backend() -> None:
    x, xdbl, dt_weight, dt_bias, A, D, index = make_case(length=6, dim=3, k=2, rank=1, dstate=2)
    x.requires_grad_(True)
    dt_bias.requires_grad_(True)
    y = directional_scan(x, xdbl, dt_weight, dt_bias, A, D, index, backend="auto")
    assert y.grad_fn is not None
    assert torch.autograd.gradcheck(
        lambda x_, b_: directional_scan(x_, xdbl, dt_weight, b_, A, D, index), (x, dt_bias), fast_mode=True
    )


def test_shape_errors_name_the_argument() -> None:
    x, xdbl, dt_weight, dt_bias, A, D, index = make_case()
    with pytest.raises(ValueError, match="index"):
        directional_scan(x, xdbl, dt_weight, dt_bias, A, D, index[:, :-1])
    with pytest.raises(ValueError, match="xdbl"):
        directional_scan(x, xdbl[..., :-1], dt_weight, dt_bias, A, D, index)
    with pytest.raises(ValueError, match="A must be"):
        directional_scan(x, xdbl, dt_weight, dt_bias, A[:1], D, index)


@needs_kernel
def test_fused_kernel_reads_xdbl_through_its_strides() -> None:
    x, xdbl, dt_weight, dt_bias, A, D, index = make_case(length=90, dim=9, k=4, rank=2, dstate=16)
    direction_major = xdbl.permute(0, 2, 1, 3).contiguous()  # (batch, K, L, E) in memory
    view = direction_major.permute(0, 2, 1, 3)  # the same values seen as (batch, L, K, E)
    assert not view.is_contiguous()
    with torch.no_grad():
        strided = directional_scan(x, view, dt_weight, dt_bias, A, D, index, backend="cpu")
    torch.testing.assert_close(
        strided, directional_scan_ref(x, xdbl, dt_weight, dt_bias, A, D, index), rtol=1e-10, atol=1e-10
    )


def _relative_errors(got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]) -> list[float]:
    """max |got - want| / max |want|, tensor by tensor."""
    return [float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want, strict=True)]


def _value_and_grads(fn, args, grad_out):
    inputs = [t for t in args[:-1] if t is not None]
    y = fn(*args)
    return (y.detach(), *torch.autograd.grad(y, inputs, grad_out))


def _curve_case(k: int, h: int, w: int, curve: str, dtype: torch.dtype, with_d: bool, batch: int = 2, dim: int = 12):
    x, xdbl, dt_weight, dt_bias, A, D, _ = make_case(
        batch=batch, length=h * w, dim=dim, k=k, rank=3, dstate=4, dtype=dtype, with_d=with_d
    )
    index, _ = direction_tables(curve, h, w, k)
    args = (x, xdbl, dt_weight, dt_bias, A, D)
    return (*(None if t is None else t.requires_grad_() for t in args), index)


@needs_kernel
@pytest.mark.parametrize(
    ("k", "h", "w", "curve"),
    [(2, 9, 8, "sweep"), (4, 5, 7, "zigzag"), (8, 5, 6, "hilbert"), (8, 4, 6, "zorder"), (4, 7, 3, "scan")],
)
@pytest.mark.parametrize("with_d", [True, False])
def test_fused_gradients_match_the_composition_float64(k: int, h: int, w: int, curve: str, with_d: bool) -> None:
    args = _curve_case(k, h, w, curve, torch.float64, with_d)
    grad_out = torch.randn(args[0].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fused = _value_and_grads(lambda *a: directional_scan(*a, backend="cpu"), args, grad_out)
    oracle = _value_and_grads(lambda *a: directional_scan_ref(*a, backend="reference"), args, grad_out)
    assert max(_relative_errors(fused, oracle)) < 1e-9


@needs_kernel
@pytest.mark.parametrize(("k", "h", "w", "curve"), [(2, 9, 8, "sweep"), (8, 5, 7, "hilbert")])
def test_fused_gradients_match_the_composition_float32(k: int, h: int, w: int, curve: str) -> None:
    # 20 channels: a block of 16 lanes (two of 8 with 32-byte vectors) and a tail
    args = _curve_case(k, h, w, curve, torch.float32, True, dim=20)
    grad_out = torch.randn(args[0].shape, generator=torch.Generator().manual_seed(1))
    fused = _value_and_grads(lambda *a: directional_scan(*a, backend="cpu"), args, grad_out)
    unfused = _value_and_grads(lambda *a: directional_scan_ref(*a, backend="cpu"), args, grad_out)
    assert max(_relative_errors(fused, unfused)) < 1e-4


@needs_kernel
def test_fused_backward_with_channel_splits_strided_xdbl_and_partial_requests() -> None:
    # one batch element and four threads: the channel blocks are cut into splits whose partial row gradients
    # are summed; xdbl is a (batch, K, L, E) tensor seen as (batch, L, K, E); only x and xdbl want gradients
    x, xdbl, dt_weight, dt_bias, A, D, index = make_case(batch=1, length=70, dim=20, k=4, rank=2, dstate=16)
    view = xdbl.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3).requires_grad_()
    x.requires_grad_()
    grad_out = torch.randn(x.shape, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        y = directional_scan(x, view, dt_weight, dt_bias, A, D, index, backend="cpu")
        got = torch.autograd.grad(y, (x, view), grad_out)
    finally:
        torch.set_num_threads(threads)
    want = torch.autograd.grad(directional_scan_ref(x, view, dt_weight, dt_bias, A, D, index), (x, view), grad_out)
    assert max(_relative_errors(got, want)) < 1e-9


@needs_kernel
@pytest.mark.parametrize(("k", "h", "w", "curve"), [(4, 5, 7, "zigzag"), (8, 5, 6, "hilbert")])
def test_fused_32_byte_vector_build_matches_reference(narrow_scan_kernel, k: int, h: int, w: int, curve: str) -> None:
    args = _curve_case(k, h, w, curve, torch.float64, True, dim=20)
    grad_out = torch.randn(args[0].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fused = _value_and_grads(lambda *a: directional_scan(*a, backend="cpu"), args, grad_out)
    oracle = _value_and_grads(lambda *a: directional_scan_ref(*a, backend="reference"), args, grad_out)
    assert max(_relative_errors(fused, oracle)) < 1e-9
