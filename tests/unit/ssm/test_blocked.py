"""The ``export`` backend (blocked scan in plain tensor operations) and the export mode that selects it.

The generic backend tests (``test_backends.py``) cover values and gradients of every backend; here: sequence lengths
around the block boundaries, decays far beyond the range where an ``exp(cumsum)`` formulation overflows, many steps
of decays close to 1, and the export mode's dispatch. The oracle is the sequential reference in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

from ssmad.ssm import export_mode, is_exporting, resolve_backend, selective_scan
from ssmad.ssm.blocked import block_length
from ssmad.ssm.directional import fused_available

from .conftest import make_inputs


def _both(x, last: bool = True):
    args = [None if t is None else t.detach() for t in x.args()]
    ref = selective_scan(
        *[None if t is None else t.double() for t in args], delta_softplus=True, return_last_state=last
    )
    out = selective_scan(*args, delta_softplus=True, return_last_state=last, backend="export")
    return out, ref


def test_block_length_is_the_ceiling_square_root():
    for length in (1, 2, 3, 4, 5, 15, 16, 17, 255, 256, 257, 4096):
        t = block_length(length)
        assert t * t >= length > (t - 1) * (t - 1), length


@pytest.mark.parametrize("length", [1, 2, 3, 8, 9, 10, 24, 25, 26, 63])
def test_lengths_around_block_boundaries(length):
    x = make_inputs(2, 6, 4, length, 3, requires_grad=False, seed=length)
    (y, h), (y_ref, h_ref) = _both(x)
    torch.testing.assert_close(y, y_ref.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h, h_ref.float(), rtol=1e-4, atol=1e-5)


def test_strong_decays_do_not_overflow():
    # dt·|A| up to ~100 per step: a block of T steps spans exponents of thousands, far past float32's exp range
    # (88), where exp(S_t)·cumsum(exp(-S_s)·x_s) would give inf/NaN; every factor here stays in (0, 1]
    x = make_inputs(1, 4, 16, 100, 1, requires_grad=False, has_z=False, seed=3)
    x.delta = torch.full_like(x.delta, 6.0)  # softplus(6 + bias) ≈ 6
    x.A = -torch.linspace(1.0, 16.0, 16).repeat(4, 1)
    cumulative = float(x.A.abs().max() * 6.0 * block_length(100))
    assert cumulative > 88.0  # the cumsum form would overflow within one block
    (y, h), (y_ref, h_ref) = _both(x)
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    torch.testing.assert_close(y, y_ref.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h, h_ref.float(), rtol=1e-4, atol=1e-5)


def test_long_sequence_of_slow_decays():
    # 2000 steps of decays close to 1: the within-block cumulative sums subtract large, close numbers
    x = make_inputs(1, 4, 4, 2000, 2, requires_grad=False, has_z=False, seed=4)
    x.delta = torch.full_like(x.delta, -7.0)  # softplus ≈ 1e-3 plus the bias
    x.A = -torch.rand(4, 4) * 0.1
    (y, h), (y_ref, h_ref) = _both(x)
    torch.testing.assert_close(y, y_ref.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h, h_ref.float(), rtol=1e-4, atol=1e-5)


def test_export_mode_selects_the_export_backend_and_restores():
    assert not is_exporting()
    before = resolve_backend("auto", "cpu")
    with export_mode():
        assert is_exporting()
        for requested in ("auto", "reference", "torch", "cpu"):
            assert resolve_backend(requested, "cpu") == "export"
        assert not fused_available("auto", "cpu", torch.float32)  # the fused C++ kernel cannot be traced
        with export_mode():
            assert is_exporting()
        assert is_exporting()
    assert not is_exporting()
    assert resolve_backend("auto", "cpu") == before
    with pytest.raises(RuntimeError), export_mode():
        raise RuntimeError("boom")
    assert not is_exporting()


def test_export_mode_changes_the_path_not_the_result():
    from ssmad.layers.ss2d import SS2D

    layer = SS2D(d_model=8, d_state=4, num_directions=8, scan_type="hilbert").eval()
    x = torch.randn(2, 6, 5, 8)
    with torch.no_grad():
        fast = layer(x)
        with export_mode():
            exported = layer(x)
    torch.testing.assert_close(exported, fast, rtol=1e-4, atol=1e-5)
    assert not math.isnan(float(exported.abs().sum()))


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation notice
def test_torch_onnx_export_is_detected_without_export_mode():
    import io

    pytest.importorskip("onnx")
    seen: list[tuple[bool, str]] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((is_exporting(), resolve_backend("cpu", "cpu")))
            return x + 1

    torch.onnx.export(Probe(), (torch.zeros(2),), io.BytesIO(), dynamo=False)
    assert seen and all(s == (True, "export") for s in seen)
    assert not is_exporting()


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_is_tracing_covers_export_and_torchscript_tracing():
    from ssmad.ssm import is_tracing

    seen: list[bool] = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        seen.append(is_tracing())
        return x + 1

    assert not is_tracing()
    with export_mode():
        assert is_tracing()
    probe(torch.zeros(2))
    torch.jit.trace(probe, (torch.zeros(2),), check_trace=False)
    assert seen == [False, True]
    assert not is_tracing()
