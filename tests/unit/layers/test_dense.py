"""``layers.dense.linear``: ``F.linear``'s values and gradients, through oneDNN's 1×1 convolution where it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmad.layers import dense
from ssmad.ssm import export_mode

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this PyTorch has no oneDNN")


def _grads(fn, x, w, b, g):  # type: ignore[no-untyped-def]
    inputs = [t for t in (x, w, b) if t is not None]
    y = fn(x, w, b)
    return y, torch.autograd.grad(y, inputs, g)


@needs_onednn
@pytest.mark.parametrize(
    ("shape", "out", "bias"),
    [((8, 32, 32, 64), 256, True), ((2, 1024, 128), 288, False), ((300, 96), 40, True), ((4, 16, 16, 512), 1024, True)],
)
def test_onednn_path_equals_f_linear(shape: tuple[int, ...], out: int, bias: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    w = (torch.randn(out, shape[-1], generator=gen) / shape[-1] ** 0.5).requires_grad_(True)
    b = torch.randn(out, generator=gen, requires_grad=True) if bias else None
    assert dense._use_onednn(x, w)
    g = torch.randn(*shape[:-1], out, generator=gen)
    y, grads = _grads(dense.linear, x, w, b, g)
    y_ref, grads_ref = _grads(F.linear, x, w, b, g)
    assert y.shape == y_ref.shape and y.is_contiguous()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4 * want.abs().max().item())


@needs_onednn
def test_non_contiguous_input() -> None:
    x = torch.randn(4, 64, 32, 32).permute(0, 2, 3, 1)  # channels-last view of a channels-first map
    w = torch.randn(48, 64)
    assert dense._use_onednn(x, w)
    torch.testing.assert_close(dense.linear(x, w), F.linear(x, w), rtol=1e-5, atol=1e-4)


def test_other_inputs_take_f_linear_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    w = torch.randn(32, 16)
    cases = {
        "float64": (torch.randn(512, 16, dtype=torch.float64), w.double()),
        "few rows": (torch.randn(dense.MIN_ROWS - 1, 16), w),
        "one dimension": (torch.randn(16), w),
    }
    for name, (x, weight) in cases.items():
        assert not dense._use_onednn(x, weight), name
        assert torch.equal(dense.linear(x, weight), F.linear(x, weight)), name
    x = torch.randn(1024, 16)
    with export_mode():
        assert not dense._use_onednn(x, w)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert not dense._use_onednn(x, w)
    assert torch.equal(dense.linear(x, w), F.linear(x, w))


@needs_onednn
def test_layers_use_it_and_keep_their_checkpoint_keys() -> None:
    from ssmad.layers import SS2D

    torch.manual_seed(0)
    layer = SS2D(32, num_directions=2, scan_type="sweep", d_state=4)
    x = torch.randn(2, 16, 16, 32)
    saved = dense._use_onednn
    taken: list[bool] = []
    try:
        dense._use_onednn = lambda x, w: taken.append(saved(x, w)) or taken[-1]  # type: ignore[assignment]
        out = layer(x)
        dense._use_onednn = lambda x, w: False  # the plain F.linear composition
        ref = layer(x)
    finally:
        dense._use_onednn = saved
    # in_proj, out_proj and (on the fused CPU scan) x_proj, each with 512 rows: all on the oneDNN path
    assert len(taken) >= 2 and all(taken)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert {"in_proj.weight", "out_proj.weight"} <= set(layer.state_dict())


@pytest.mark.parametrize(
    ("shape", "sizes", "bias"), [((8, 16, 16, 24), (48, 48), True), ((2, 300, 40), (80, 112, 4), False)]
)
def test_linear_split_equals_a_split_of_one_product(shape: tuple[int, ...], sizes: tuple[int, ...], bias: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    w = (torch.randn(sum(sizes), shape[-1], generator=gen) / shape[-1] ** 0.5).requires_grad_(True)
    b = torch.randn(sum(sizes), generator=gen, requires_grad=True) if bias else None
    inputs = [t for t in (x, w, b) if t is not None]
    gs = [torch.randn(*shape[:-1], s, generator=gen) for s in sizes]

    parts = dense.linear_split(x, w, b, sizes)
    want = torch.split(F.linear(x, w, b), list(sizes), dim=-1)
    assert [p.shape for p in parts] == [q.shape for q in want]
    assert all(p.is_contiguous() for p in parts)  # each part its own product on the CPU
    for p, q in zip(parts, want, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
    got = torch.autograd.grad(parts, inputs, gs)
    ref = torch.autograd.grad(want, inputs, gs)
    for g1, g2 in zip(got, ref, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-4 * g2.abs().max().item())


def test_linear_split_under_export_is_one_product() -> None:
    x = torch.randn(2, 300, 8)
    w = torch.randn(10, 8)
    with export_mode():
        parts = dense.linear_split(x, w, None, (4, 6))
    assert parts[0].data_ptr() + 4 * 4 == parts[1].data_ptr()  # views of one output, as traced graphs expect
    torch.testing.assert_close(torch.cat(parts, -1), F.linear(x, w))
