"""The ``triton`` backend's kernels in Triton's interpreter on CPU tensors, against the float64 reference.

Not collected by default (the file name does not start with ``test_``): the interpreter needs ``TRITON_INTERPRET=1``
before the process imports Triton, so ``test_triton_scan.py`` runs this file in a fresh process::

    TRITON_INTERPRET=1 python -m pytest -q -o addopts= tests/unit/ssm/triton_interpreter_cases.py

Chunks of 4 steps and tiles of 32 elements make every case cross chunk boundaries, end in a partial chunk and
split a group's channels over several programs (with a masked tail block, and ``dB``/``dC`` added atomically);
``L = 1`` runs with one block per group (stored directly). The interpreter runs a scan element by element, so shapes
are small.

"Within 1e-4 relative" is checked per tensor as ``|got - want| <= 1e-4 * (|want| + max|want|)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmad.ssm import directional_scan, directional_scan_ref, selective_scan
from ssmad.ssm import triton_scan as ts

from .conftest import ScanInputs, make_inputs
from .test_directional import make_case

if not ts.triton_importable():
    pytest.skip("triton is not installed", allow_module_level=True)
if not ts.interpret_requested():
    pytest.skip("run with TRITON_INTERPRET=1 (see the module docstring)", allow_module_level=True)

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
RTOL = 1e-4


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    monkeypatch.setattr(ts, "CHUNK", 4)
    monkeypatch.setattr(ts, "TILE", 32)


def test_the_kernels_are_interpreted():
    from ssmad.ssm import _triton_kernels

    assert _triton_kernels.INTERPRETED, "TRITON_INTERPRET=1 was set after triton was imported"


def assert_close_rel(got: torch.Tensor, want: torch.Tensor, name: str) -> None:
    want = want.double()
    scale = want.abs().max().item()
    torch.testing.assert_close(got.double(), want, rtol=RTOL, atol=RTOL * scale, msg=lambda m: f"{name}: {m}")


def _double(x: ScanInputs) -> dict[str, torch.Tensor | None]:
    return {
        k: None if v is None else v.detach().double().requires_grad_(v.requires_grad)
        for k, v in zip(NAMES, x.args(), strict=True)
    }


def _check_against_reference(x: ScanInputs, softplus: bool, loss_on: str = "both") -> None:
    """Output, last state and every input gradient of the triton backend against the float64 reference."""
    fast = dict(zip(NAMES, x.args(), strict=True))
    ref = _double(x)
    out, last = selective_scan(**fast, delta_softplus=softplus, return_last_state=True, backend="triton")
    out_ref, last_ref = selective_scan(**ref, delta_softplus=softplus, return_last_state=True, backend="reference")
    assert out.dtype == x.u.dtype and out.shape == x.u.shape and last.dtype == torch.float32
    assert_close_rel(out, out_ref, "out")
    assert_close_rel(last, last_ref, "last state")
    g = torch.Generator().manual_seed(1)
    w_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    w_last = torch.randn(last.shape, generator=g, dtype=torch.float64)
    use_out, use_last = loss_on in ("both", "out"), loss_on in ("both", "last")
    loss = (out * w_out.float()).sum() * use_out + (last * w_last.float()).sum() * use_last
    loss_ref = (out_ref * w_out).sum() * use_out + (last_ref * w_last).sum() * use_last
    names = [k for k, v in fast.items() if v is not None and v.requires_grad]
    got = torch.autograd.grad(loss, [fast[k] for k in names], allow_unused=True)
    want = torch.autograd.grad(loss_ref, [ref[k] for k in names], allow_unused=True)
    for name, a, b in zip(names, got, want, strict=True):
        if b is None:  # z cannot reach the last state
            assert a is None or not a.any(), name
            continue
        assert a is not None and a.dtype == fast[name].dtype, name
        assert_close_rel(a, b, f"d{name}")


CASES = {
    # (batch, D, N, L, G), options; L = 11 and 13 are not multiples of the 4-step chunk
    "grouped-D-z-bias-softplus": ((2, 8, 4, 11, 2), dict(), True),
    "L1": ((2, 6, 3, 1, 3), dict(), True),
    "ungrouped-bare": ((1, 5, 3, 9, None), dict(has_D=False, has_z=False, has_bias=False), False),
    "odd-channels-per-group": ((1, 10, 5, 13, 2), dict(has_z=False), True),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_float64_reference(case):
    shape, opts, softplus = CASES[case]
    x = make_inputs(*shape, seed=len(case), **opts)
    if not softplus:  # raw delta is the step: keep it positive, as softplus would
        x.delta = F.softplus(x.delta.detach()).requires_grad_(True)
    _check_against_reference(x, softplus)


@pytest.mark.parametrize("loss_on", ["out", "last"])
def test_gradient_through_one_output_only(loss_on):
    # the backward gets dy = None (loss on the last state only) or dlast = None (loss on the output only)
    _check_against_reference(make_inputs(1, 4, 3, 7, 2, seed=11), True, loss_on)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_use_a_float32_recurrence(dtype):
    x = make_inputs(1, 4, 3, 6, 2, dtype=dtype, seed=6)
    out = selective_scan(*x.args(), delta_softplus=True, backend="triton")
    assert out.dtype == dtype
    as32 = [None if t is None else t.detach().float() for t in x.args()]
    expected = selective_scan(*as32, delta_softplus=True, backend="reference")
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), expected, rtol=2 * eps, atol=2 * eps)
    out.float().square().sum().backward()
    for name, t in x.tensors().items():
        assert t.grad is not None and t.grad.dtype == dtype and torch.isfinite(t.grad.float()).all(), name


def test_float64_inputs_run_on_the_torch_backend():
    x = make_inputs(1, 4, 3, 6, 2, dtype=torch.float64, requires_grad=False, seed=2)
    got = selective_scan(*x.args(), delta_softplus=True, backend="triton")
    assert torch.equal(got, selective_scan(*x.args(), delta_softplus=True, backend="torch"))


@pytest.mark.parametrize(
    "shape",
    [
        dict(batch=2, length=13, dim=5, k=3, rank=3, dstate=4),  # partial last chunk, masked channel tail
        dict(batch=1, length=1, dim=4, k=2, rank=1, dstate=3),  # L = 1
        dict(batch=1, length=9, dim=3, k=2, rank=2, dstate=2, with_d=False),
    ],
)
def test_fused_directional_scan_matches_the_float64_composition(shape):
    args = make_case(**shape, dtype=torch.float32)
    with torch.no_grad():
        got = directional_scan(*args, backend="triton")
    want = directional_scan_ref(*[a.double() if a is not None and a.is_floating_point() else a for a in args])
    assert got.dtype == torch.float32
    assert_close_rel(got, want, "directional")
