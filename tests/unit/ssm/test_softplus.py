"""ssmad.ssm.softplus against torch's F.softplus: values, threshold, gradient, in-place use and the fallbacks."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from ssmad.ssm import cpu, softplus
from ssmad.ssm.softplus import softplus_

softplus_module = importlib.import_module("ssmad.ssm.softplus")  # the package exports the function under this name

needs_kernel = pytest.mark.skipif(not cpu.is_available(), reason="no C++ compiler for the CPU kernel")


def _values(dtype: torch.dtype, n: int = 50_001) -> torch.Tensor:
    # the whole useful range, both sides of the threshold at 20, plus a tail that is not a whole vector
    return torch.linspace(-87.0, 40.0, n, dtype=torch.float64).to(dtype)


@needs_kernel
def test_float64_equals_torch():
    x = _values(torch.float64)
    torch.testing.assert_close(softplus(x), F.softplus(x), rtol=1e-15, atol=0)


@needs_kernel
@pytest.mark.parametrize("lo,rtol", [(-5.0, 5e-7), (-87.0, 4e-6)])
def test_float32_relative_error(lo, rtol):
    x = torch.linspace(lo, 40.0, 200_003)
    exact = F.softplus(x.double())
    err = ((softplus(x).double() - exact).abs() / exact).max().item()
    assert err < rtol, f"float32 softplus: relative error {err:.2e} over [{lo}, 40]"


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identity_above_the_threshold(dtype):
    x = torch.linspace(20.0001, 1e4, 8192, dtype=dtype)
    assert torch.equal(softplus(x), x)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_is_torchs(dtype):
    x = _values(dtype, 9_000).reshape(3, 3000)[:, ::2].requires_grad_(True)  # not contiguous
    g = torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    (dx,) = torch.autograd.grad(softplus(x), x, g)
    x_ref = x.detach().clone().requires_grad_(True)
    (dx_ref,) = torch.autograd.grad(F.softplus(x_ref), x_ref, g)
    torch.testing.assert_close(dx, dx_ref, rtol=0, atol=0)


@needs_kernel
def test_in_place_variant_writes_over_its_input():
    x = _values(torch.float32, 10_000)
    expected = softplus(x)
    y = x.clone()
    out = softplus_(y)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@needs_kernel
def test_parallel_split_equals_one_thread(monkeypatch):
    x = torch.randn(3 * 4096 + 17, generator=torch.Generator().manual_seed(1)) * 10
    one = softplus(x)
    monkeypatch.setattr(softplus_module, "PARALLEL_VALUES", 0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        torch.testing.assert_close(softplus(x), one, rtol=0, atol=0)
    finally:
        torch.set_num_threads(threads)


def test_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(cpu, "is_available", lambda: False)
    x = _values(torch.float32, 10_000)
    assert torch.equal(softplus(x), F.softplus(x))
    small = torch.randn(100)  # below KERNEL_VALUES: torch's own
    monkeypatch.undo()
    assert torch.equal(softplus(small), F.softplus(small))
    half = _values(torch.float16, 10_000)
    assert torch.equal(softplus(half), F.softplus(half))
