"""The directional-SSM core shared by SS2D and RSAL: training on the fused CPU kernel against the composition."""

from __future__ import annotations

import pytest
import torch

import ssmad.layers.directional as core
from ssmad.layers import RSAL, SS2D
from ssmad.layers.directional import DirectionalLayer
from ssmad.ssm import backend_available

needs_kernel = pytest.mark.skipif(not backend_available("cpu"), reason="no C++ compiler: the cpu backend is absent")


def _randomise(m: torch.nn.Module) -> None:
    """Move the parameters off their init (zero biases, D = 1, unit norms) so every gradient term shows."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g).to(p.dtype))


def _output_and_grads(m: DirectionalLayer, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    y = m(x)
    weight = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)  # a loss that weighs every output
    return [y.detach(), *torch.autograd.grad((y * weight).sum(), [x, *m.parameters()])]


def _compare(m: DirectionalLayer, x: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> float:
    assert m.use_fused(x)  # gradients wanted, cpu backend: the fused kernel and its backward
    fused = _output_and_grads(m, x)
    with monkeypatch.context() as patch:
        patch.setattr(core, "fused_available", lambda *args, **kwargs: False)
        assert not m.use_fused(x)
        composed = _output_and_grads(m, x)
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(fused, composed, strict=True))


@needs_kernel
@pytest.mark.parametrize(
    ("num_directions", "scan_type", "h", "w"),
    [(2, "sweep", 3, 5), (4, "zigzag", 5, 3), (8, "hilbert", 6, 5), (8, "zorder", 2, 7), (4, "scan", 9, 8)],
)
def test_ss2d_training_on_the_kernel_matches_the_composition(
    num_directions: int, scan_type: str, h: int, w: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    m = SS2D(6, d_state=4, num_directions=num_directions, scan_type=scan_type, bias=True, scan_backend="cpu")
    _randomise(m)
    x = torch.randn(2, h, w, 6)
    assert _compare(m.double(), x.double(), monkeypatch) < 1e-9  # SiLU z gate, all parameters, the input
    assert _compare(m.float(), x, monkeypatch) < 1e-4


@needs_kernel
@pytest.mark.parametrize("length", [1, 70])
def test_rsal_training_on_the_kernel_matches_the_composition(length: int, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    m = RSAL(10, d_state=4, bias=True, scan_backend="cpu")  # d_inner 20: channel blocks and a tail
    _randomise(m)
    x = torch.randn(2, length, 10)
    assert _compare(m.double(), x.double(), monkeypatch) < 1e-9  # GELU z gate
    assert _compare(m.float(), x, monkeypatch) < 1e-4


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_other_backends_train_through_the_composition(backend: str) -> None:
    m = SS2D(6, d_state=2, num_directions=4, scan_backend=backend)
    x = torch.randn(1, 3, 4, 6, requires_grad=True)
    assert not m.use_fused(x)
    m(x).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in m.parameters())
