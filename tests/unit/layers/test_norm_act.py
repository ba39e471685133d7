"""``layers.norm_act.instance_norm_silu``: values and gradients of ``F.silu(F.instance_norm(x))``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmad.layers import norm_act
from ssmad.ssm import export_mode

needs_kernel = pytest.mark.skipif(norm_act.load_library() is None, reason="no C++ compiler: the kernel is not built")


def _value_and_grad(fn, x, g):  # type: ignore[no-untyped-def]
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (dx,) = torch.autograd.grad(y, [x], g)
    return y, dx


def _torch_pair(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.silu(F.instance_norm(x, eps=eps))


@needs_kernel
@pytest.mark.parametrize(
    ("shape", "scale", "offset"),
    [
        ((8, 24, 64, 64), 1.0, 0.0),  # 24 channels: one full and one partial vector block
        ((2, 40, 9, 13), 3.0, 1.0),  # non-square map
        ((1, 7, 5, 5), 0.1, -2.0),  # fewer channels than a vector
        ((3, 112, 16, 16), 1.0, 0.0),
        ((2, 16, 32, 32), 1e-2, 1e3),  # a mean 1e5 times the spread (torch's float32 pair is off by 5e-3 here)
    ],
)
def test_kernel_equals_instance_norm_then_silu(shape: tuple[int, ...], scale: float, offset: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=gen) * scale + offset).contiguous(memory_format=torch.channels_last)
    g = torch.randn(*shape, generator=gen)
    assert norm_act.instance_norm_silu_available(x)
    y, dx = _value_and_grad(norm_act.instance_norm_silu, x, g)
    # oracle: the torch pair on the same float32 values, computed in float64
    y_ref, dx_ref = _value_and_grad(_torch_pair, x.double(), g.double())
    assert y.dtype == dx.dtype == torch.float32
    assert y.is_contiguous(memory_format=torch.channels_last) and dx.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=2e-6)
    torch.testing.assert_close(dx.double(), dx_ref, rtol=0, atol=1e-5 * dx_ref.abs().max().item())


@needs_kernel
def test_eps_and_thread_count_do_not_change_the_contract() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 24, 8, 8, generator=gen).contiguous(memory_format=torch.channels_last)
    g = torch.randn(4, 24, 8, 8, generator=gen)
    y_ref, dx_ref = _value_and_grad(lambda t: _torch_pair(t, eps=0.5), x, g)
    threads = torch.get_num_threads()
    try:
        for n in sorted({1, max(2, threads)}):
            torch.set_num_threads(n)
            y, dx = _value_and_grad(lambda t: norm_act.instance_norm_silu(t, eps=0.5), x, g)
            torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(dx, dx_ref, rtol=1e-4, atol=1e-5)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("case", ["channels_first", "float64", "export"])
def test_fallbacks_are_the_torch_pair_exactly(case: str) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 24, 6, 6, generator=gen, dtype=torch.float64 if case == "float64" else torch.float32)
    if case == "export":
        x = x.contiguous(memory_format=torch.channels_last)
        with export_mode():
            assert not norm_act.instance_norm_silu_available(x)
            y = norm_act.instance_norm_silu(x)
    else:
        assert not norm_act.instance_norm_silu_available(x)
        y = norm_act.instance_norm_silu(x)
    assert torch.equal(y, _torch_pair(x))


def _ln_gate_torch(y, z, w, b, eps=1e-5):  # type: ignore[no-untyped-def]
    return F.layer_norm(y, (y.shape[-1],), w, b, eps) * F.silu(z)


def _ln_gate_case(shape: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    c = shape[-1]
    y = torch.randn(*shape, generator=gen) * 2 + 0.5
    z = torch.randn(*shape, generator=gen) * 2
    return [y, z, torch.randn(c, generator=gen), torch.randn(c, generator=gen)]


def _ln_gate_grads(fn, inputs, g):  # type: ignore[no-untyped-def]
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    return out, torch.autograd.grad(out, leaves, g)


@needs_kernel
@pytest.mark.parametrize("shape", [(8, 16, 16, 48), (2, 9, 13, 80), (3, 5, 20), (1, 4, 4, 224), (300, 7)])
def test_layer_norm_silu_gate_kernel_equals_the_composition(shape: tuple[int, ...]) -> None:
    inputs = _ln_gate_case(shape)
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    out, grads = _ln_gate_grads(norm_act.layer_norm_silu_gate, inputs, g)
    want, want_grads = _ln_gate_grads(_ln_gate_torch, [t.double() for t in inputs], g.double())  # float64 oracle
    assert out.dtype == torch.float32 and out.shape == want.shape
    torch.testing.assert_close(out.double(), want, rtol=0, atol=2e-6 * want.abs().max().item())
    for got, ref in zip(grads, want_grads, strict=True):  # y, z, weight, bias
        torch.testing.assert_close(got.double(), ref, rtol=0, atol=2e-6 * ref.abs().max().item())


@pytest.mark.parametrize("case", ["float64", "strided_gate", "export"])
def test_layer_norm_silu_gate_fallbacks_are_the_composition_exactly(case: str) -> None:
    y, z, w, b = _ln_gate_case((2, 6, 6, 24), seed=3)
    if case == "float64":
        y, z, w, b = (t.double() for t in (y, z, w, b))
    if case == "strided_gate":
        z = torch.cat([z, z], dim=-1)[..., :24]  # a view with a row stride of 48
    if case == "export":
        with export_mode():
            out = norm_act.layer_norm_silu_gate(y, z, w, b)
    else:
        out = norm_act.layer_norm_silu_gate(y, z, w, b)
    assert torch.equal(out, _ln_gate_torch(y, z, w, b))


@needs_kernel
def test_ss2d_takes_the_gate_kernel_and_keeps_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssmad.layers import SS2D

    torch.manual_seed(0)
    layer = SS2D(12, num_directions=4, d_state=4, scan_type="hilbert")
    x = torch.randn(2, 6, 7, 12)
    g = torch.randn(2, 6, 7, 12)
    calls = []
    real = norm_act._LayerNormSiLUGate.apply

    def spy(*args):  # type: ignore[no-untyped-def]
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(norm_act._LayerNormSiLUGate, "apply", spy)
    out, grads = _ln_gate_grads(lambda t: layer(t), [x], g)
    assert calls, "SS2D did not take the LayerNorm x SiLU gate kernel"
    monkeypatch.setattr(norm_act, "_kernel_usable", lambda *tensors: False)
    want, want_grads = _ln_gate_grads(lambda t: layer(t), [x], g)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], want_grads[0], rtol=1e-4, atol=1e-5)
