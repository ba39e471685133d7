"""The pure-PyTorch chunked backend's own parts: the parallel scans, chunking, memory bound, stability."""

from __future__ import annotations

import pytest
import torch

from ssmad.ssm import chunked, selective_scan

from .conftest import make_inputs


def _sequential(a: torch.Tensor, x: torch.Tensor, reverse: bool) -> torch.Tensor:
    """The recurrences of scan_ / scan_reverse_ written as plain loops."""
    out = x.clone()
    steps = range(out.shape[0] - 2, -1, -1) if reverse else range(1, out.shape[0])
    for t in steps:
        out[t] = out[t] + (a[t + 1] * out[t + 1] if reverse else a[t] * out[t - 1])
    return out


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_parallel_scans_equal_sequential_loops(reverse):
    g = torch.Generator().manual_seed(0)
    for steps in [*range(1, 34), 63, 64, 65, 100]:
        a = torch.rand(steps, 3, 2, generator=g, dtype=torch.float64)
        x = torch.randn(steps, 3, 2, generator=g, dtype=torch.float64)
        expected = _sequential(a, x, reverse)
        # the scratch space starts as NaN: a read of an unwritten cell would poison the result
        work = torch.full((chunked._work_rows(steps), 3, 2), float("nan"), dtype=torch.float64)
        a_in = a.clone()
        a_in[0] = float("nan")  # a[0] is part of neither recurrence
        got = x.clone()
        (chunked.scan_reverse_ if reverse else chunked.scan_)(a_in, got, work)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12, msg=f"T={steps}")
        torch.testing.assert_close(a_in[1:], a[1:], rtol=0, atol=0)  # decays are read only


def test_scan_with_vanishing_decays_is_exact_and_finite():
    # exp(dt A) underflows to 0 (and products of many decays to subnormals/0): never a division, never NaN
    a = torch.tensor([1.0, 0.0, 1e-30, 1e-30, 1e-30, 0.5, 0.0, 1.0]).unsqueeze(1)
    x = torch.arange(1.0, 9.0).unsqueeze(1)
    got = x.clone()
    chunked.scan_(a, got, torch.empty(chunked._work_rows(8), 1))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _sequential(a, x, reverse=False))


@pytest.mark.parametrize("chunk", [1, 2, 5, 16, 41])
def test_result_independent_of_chunk_length(chunk, monkeypatch):
    x = make_inputs(batch=2, dim=6, dstate=3, length=41, groups=3, dtype=torch.float64, seed=1)
    tensors = list(x.tensors().values())
    monkeypatch.setattr(chunked, "CHUNK", chunk)
    out, last = selective_scan(*x.args(), delta_softplus=True, return_last_state=True, backend="torch")
    grads = torch.autograd.grad(out.sin().sum() + last.square().sum(), tensors)
    ref, ref_last = selective_scan(*x.args(), delta_softplus=True, return_last_state=True, backend="reference")
    ref_grads = torch.autograd.grad(ref.sin().sum() + ref_last.square().sum(), tensors)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(last, ref_last, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_chunk_length_follows_budget_and_override(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(chunked, "CHUNK", None)
    monkeypatch.setitem(chunked.BUDGET, "cpu", 4096)
    assert chunked.chunk_length(1000, 64, cpu) == 64  # 64 steps x 64 elements = the budget
    assert chunked.chunk_length(10, 64, cpu) == 10  # never longer than the sequence
    assert chunked.chunk_length(1000, 10**6, cpu) == 1  # a row over budget still makes progress
    monkeypatch.setattr(chunked, "CHUNK", 7)
    assert chunked.chunk_length(1000, 64, cpu) == 7
    assert chunked.chunk_length(3, 64, cpu) == 3


def test_saved_state_is_bounded_by_chunks(monkeypatch):
    # the backward keeps the inputs plus one state per chunk, never the (batch, D, L, N) history
    monkeypatch.setattr(chunked, "CHUNK", None)
    monkeypatch.setitem(chunked.BUDGET, "cpu", 2**15)
    batch, dim, dstate, length = 1, 64, 16, 2048
    x = make_inputs(batch, dim, dstate, length, 1, has_z=False, seed=2)
    out = selective_scan(*x.args(), delta_softplus=True, backend="torch")
    node = out.grad_fn
    while type(node).__name__ != "_ChunkedScanBackward":
        node = node.next_functions[0][0]
    saved = sum(t.numel() for t in node.saved_tensors if t is not None)
    history = batch * dim * length * dstate
    inputs = sum(t.numel() for t in (x.u, x.delta, x.A, x.B, x.C, x.D))
    chunk = chunked.chunk_length(length, batch * dim * dstate, torch.device("cpu"))
    assert chunk == 32
    assert saved <= inputs + (length // chunk) * batch * dim * dstate
    assert saved < history / 4


def test_double_backward_is_refused():
    x = make_inputs(1, 4, 3, 10, 1, has_z=False, has_bias=False, dtype=torch.float64)
    out = selective_scan(*x.args(), backend="torch")
    (du,) = torch.autograd.grad(out.square().sum(), [x.u], create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(du.sum(), [x.u])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_match_cpu_reference():
    x = make_inputs(2, 64, 16, 700, 4, seed=3)
    out = selective_scan(*x.args(), delta_softplus=True, backend="reference")
    grads = torch.autograd.grad(out.square().sum(), list(x.tensors().values()))
    dev = [None if t is None else t.detach().cuda().requires_grad_(True) for t in x.args()]
    out_gpu = selective_scan(*dev, delta_softplus=True, backend="torch")
    assert out_gpu.is_cuda
    grads_gpu = torch.autograd.grad(out_gpu.square().sum(), [t for t in dev if t is not None])
    torch.testing.assert_close(out_gpu.cpu(), out, rtol=1e-3, atol=1e-4)
    for got, want in zip(grads_gpu, grads, strict=True):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-3, atol=1e-3)
