"""Every fast selective-scan backend against the sequential reference: values, gradients, edge cases, dispatch.

The tests are parametrised over ``available_backends("cpu")`` minus ``reference``, so a backend added later
is covered without touching this file. The oracle is ``backend="reference"`` run on float64 copies of the
inputs, so the tolerances measure the fast backend's float32 error only. Chunk lengths are forced small (and
odd) wherever a backend module exposes a ``CHUNK`` setting, so that every test crosses chunk boundaries.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from ssmad.errors import MissingDependencyError
from ssmad.ssm import available_backends, resolve_backend, selective_scan

from .conftest import ScanInputs, make_inputs

FAST = [name for name in available_backends("cpu") if name != "reference"]
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
#: Forced chunk length: odd, so chunks end at odd and even positions and the last chunk is partial.
SMALL_CHUNK = 13

#: Reduced versions (batch, D, N, L, G) of the benchmark shapes; every L exceeds SMALL_CHUNK and 64.
SHAPES = {
    "mad_s3": (2, 32, 16, 150, 8),
    "mad_s2": (2, 64, 16, 100, 8),
    "mad_s0": (2, 256, 16, 64, 8),
    "acm_train": (1, 32, 16, 66, 2),
    "acm_infer": (1, 16, 16, 300, 2),
}


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    for module in ("ssmad.ssm.chunked", "ssmad.ssm.cpu"):
        mod = importlib.import_module(module)
        if hasattr(mod, "CHUNK"):
            monkeypatch.setattr(mod, "CHUNK", SMALL_CHUNK)


def test_every_device_has_a_fast_backend():
    assert FAST, "no fast backend on the CPU: the pure-PyTorch one must always be there"
    assert available_backends("cpu")[-1] == "reference"


def _double(x: ScanInputs) -> dict[str, torch.Tensor | None]:
    """Float64 leaf copies of the inputs, wanting gradients exactly where the originals do."""
    return {
        k: None if v is None else v.detach().double().requires_grad_(v.requires_grad)
        for k, v in zip(NAMES, x.args(), strict=True)
    }


def _run(kwargs: dict, backend: str, softplus: bool = True, last: bool = False):
    return selective_scan(**kwargs, delta_softplus=softplus, return_last_state=last, backend=backend)


def _grads(out: torch.Tensor, weight: torch.Tensor, leaves: dict) -> dict[str, torch.Tensor]:
    names = [k for k, v in leaves.items() if v is not None and v.requires_grad]
    grads = torch.autograd.grad((out * weight.to(out.dtype)).sum(), [leaves[k] for k in names])
    return dict(zip(names, grads, strict=True))


def _assert_matches_reference(backend: str, x: ScanInputs, softplus: bool = True, rtol=1e-3, atol=1e-4) -> None:
    """Forward and all gradients of ``backend`` on ``x`` against the float64 reference."""
    fast = dict(zip(NAMES, x.args(), strict=True))
    ref = _double(x)
    out = _run(fast, backend, softplus)
    expected = _run(ref, "reference", softplus)
    assert out.dtype == x.u.dtype and out.shape == x.u.shape
    torch.testing.assert_close(out, expected.to(out.dtype), rtol=rtol, atol=atol)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = _grads(out, weight, fast)
    want = _grads(expected, weight, ref)
    assert got.keys() == want.keys()
    for name in got:
        torch.testing.assert_close(
            got[name], want[name].to(got[name].dtype), rtol=rtol, atol=atol, msg=lambda m, n=name: f"d{n}: {m}"
        )


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("backend", FAST)
def test_matches_reference_on_reduced_benchmark_shapes(backend, shape):
    batch, dim, dstate, length, groups = SHAPES[shape]
    x = make_inputs(batch, dim, dstate, length, groups, seed=len(shape))
    _assert_matches_reference(backend, x)


GRADCHECK_CASES = {
    "all-grouped": dict(groups=2, has_D=True, has_z=True, has_bias=True, softplus=True),
    "bare-ungrouped": dict(groups=None, has_D=False, has_z=False, has_bias=False, softplus=False),
    "D-only-G1": dict(groups=1, has_D=True, has_z=False, has_bias=False, softplus=False),
    "z-bias-softplus-ungrouped": dict(groups=None, has_D=False, has_z=True, has_bias=True, softplus=True),
    "one-channel-per-group": dict(groups=4, has_D=True, has_z=True, has_bias=False, softplus=True),
}


@pytest.mark.parametrize("case", list(GRADCHECK_CASES), ids=list(GRADCHECK_CASES))
@pytest.mark.parametrize("backend", FAST)
def test_gradcheck_float64(backend, case):
    opts = dict(GRADCHECK_CASES[case])
    softplus = opts.pop("softplus")
    x = make_inputs(batch=2, dim=4, dstate=3, length=SMALL_CHUNK + 4, dtype=torch.float64, **opts)
    if not softplus:  # raw delta is used as the step: keep it positive, as softplus would
        x.delta = F.softplus(x.delta.detach()).requires_grad_(True)
    present = [(k, v) for k, v in zip(NAMES, x.args(), strict=True) if v is not None]

    def fn(*tensors):
        out, last = selective_scan(
            **dict(zip([k for k, _ in present], tensors, strict=True)),
            delta_softplus=softplus,
            return_last_state=True,
            backend=backend,
        )
        return out, last

    assert torch.autograd.gradcheck(fn, [v for _, v in present], eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize(
    ("batch", "dim", "dstate", "length", "groups"),
    [
        (2, 8, 4, 1, 2),  # L = 1
        (2, 8, 1, 40, 2),  # N = 1
        (2, 8, 4, 40, 1),  # G = 1
        (1, 5, 3, 29, 1),  # D = 5, not a multiple of the vector width
        (2, 5, 3, 29, 5),  # D = 5 with one channel per group
        (2, 12, 4, 27, 3),  # D = 12, 4 channels per group
        (2, 12, 4, 27, 4),  # D = 12, 3 channels per group
        (2, 6, 4, 33, None),  # ungrouped (batch, N, L) B and C
        (1, 3, 2, 2 * SMALL_CHUNK, None),  # L an exact multiple of the chunk length
    ],
    ids=["L1", "N1", "G1", "D5", "D5-G5", "D12-G3", "D12-G4", "ungrouped", "L-multiple-of-chunk"],
)
@pytest.mark.parametrize("backend", FAST)
def test_edge_shapes(backend, batch, dim, dstate, length, groups):
    _assert_matches_reference(backend, make_inputs(batch, dim, dstate, length, groups, seed=dim + length))


@pytest.mark.parametrize("backend", FAST)
def test_non_contiguous_inputs(backend):
    batch, dim, dstate, length, groups = 2, 12, 4, 31, 3
    g = torch.Generator().manual_seed(5)
    # every input is a transposed or strided view of a differently laid-out buffer
    u = torch.randn(batch, length, dim, generator=g).transpose(1, 2)
    delta = (torch.randn(batch, dim, 2 * length, generator=g) * 0.5 - 1.5)[:, :, ::2]
    A = -torch.exp(torch.rand(dstate, dim, generator=g) * 2).T
    B = torch.randn(batch, length, groups, dstate, generator=g).permute(0, 2, 3, 1)
    C = torch.randn(length, batch, groups, dstate, generator=g).permute(1, 2, 3, 0)
    D = torch.randn(2 * dim, generator=g)[1::2]
    z = torch.randn(dim, batch, length, generator=g).transpose(0, 1)
    bias = (torch.rand(dim, 2, generator=g) * 0.2)[:, 0]
    views = [u, delta, A, B, C, D, z, bias]
    assert not any(t.is_contiguous() for t in views)
    x = ScanInputs(*[t.requires_grad_(True) for t in views])
    _assert_matches_reference(backend, x)


@pytest.mark.parametrize("wanted", [("u",), ("A",), ("B", "C"), ("delta", "delta_bias"), ("D", "z")])
@pytest.mark.parametrize("backend", FAST)
def test_gradients_for_some_inputs_only(backend, wanted):
    x = make_inputs(2, 8, 4, 30, 2, requires_grad=False, seed=3)
    for name in wanted:
        getattr(x, name).requires_grad_(True)
    _assert_matches_reference(backend, x)


@pytest.mark.parametrize("backend", FAST)
def test_return_last_state_values_and_gradient(backend):
    x = make_inputs(2, 8, 4, 45, 2, seed=4)
    fast = dict(zip(NAMES, x.args(), strict=True))
    ref = _double(x)
    out, last = _run(fast, backend, last=True)
    out_ref, last_ref = _run(ref, "reference", last=True)
    assert last.shape == (2, 8, 4) and last.dtype == torch.float32
    torch.testing.assert_close(out, out_ref.float(), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(last, last_ref.float(), rtol=1e-3, atol=1e-4)
    w = torch.randn(last.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # the loss depends on the last state only (the backend gets no gradient for y), then on both
    for with_out in (False, True):
        loss = (last * w.float()).sum() + (out.sum() if with_out else 0)
        loss_ref = (last_ref * w).sum() + (out_ref.sum() if with_out else 0)
        got = torch.autograd.grad(loss, list(x.tensors().values()), retain_graph=True, allow_unused=True)
        want = torch.autograd.grad(loss_ref, [ref[k] for k in x.tensors()], retain_graph=True, allow_unused=True)
        for name, a, b in zip(x.tensors(), got, want, strict=True):
            if b is None:  # z cannot reach the last state
                assert a is None or not a.any(), name
                continue
            torch.testing.assert_close(a, b.float(), rtol=1e-3, atol=1e-4, msg=lambda m, n=name: f"d{n}: {m}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", FAST)
def test_low_precision_inputs(backend, dtype):
    x = make_inputs(2, 8, 4, 40, 2, dtype=dtype, seed=6)
    out = selective_scan(*x.args(), delta_softplus=True, backend=backend)
    assert out.dtype == dtype
    # same rounded inputs, fp32 recurrence: only the final rounding to `dtype` differs from the fp32 result
    as32 = [None if t is None else t.detach().float() for t in x.args()]
    expected = selective_scan(*as32, delta_softplus=True, backend="reference")
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), expected, rtol=2 * eps, atol=2 * eps)
    out.float().square().sum().backward()
    for name, t in x.tensors().items():
        assert t.grad is not None and t.grad.dtype == dtype and torch.isfinite(t.grad.float()).all(), name


@pytest.mark.parametrize("backend", FAST)
def test_large_negative_dt_times_A_stays_finite(backend):
    # dt = 50, A = -16: exp(dt A) = exp(-800) underflows to 0 in float32 (and a cumulative-sum scan overflows)
    batch, dim, dstate, length = 2, 4, 16, 40
    g = torch.Generator().manual_seed(7)
    delta = torch.full((batch, dim, length), 50.0)
    delta[:, :, 1::3] = 0.05  # mix huge and ordinary steps so the state is not just reset every step
    u = torch.randn(batch, dim, length, generator=g)
    A = torch.full((dim, dstate), -16.0)
    A[:, :4] = -torch.arange(1, 5.0)
    B = torch.randn(batch, dstate, length, generator=g)
    C = torch.randn(batch, dstate, length, generator=g)
    D = torch.randn(dim, generator=g)
    x = ScanInputs(u, delta, A, B, C, D, None, None)
    for t in x.tensors().values():
        t.requires_grad_(True)
    out = selective_scan(u, delta, A, B, C, D, backend=backend)
    assert torch.isfinite(out).all()
    # hand check at a step with dt = 50 and A = -16 everywhere: the state forgets all history, h = dt B u
    A16 = torch.full((dim, dstate), -16.0)
    out16 = selective_scan(u, delta, A16, B, C, None, backend=backend)
    t = 3  # delta[..., 3] == 50
    expected = 50.0 * u[:, :, t] * (B[:, :, t] * C[:, :, t]).sum(-1, keepdim=True)
    torch.testing.assert_close(out16[:, :, t], expected, rtol=1e-5, atol=1e-4)
    _assert_matches_reference(backend, x, softplus=False)
    _assert_matches_reference(backend, x, softplus=True)


@pytest.mark.parametrize("backend", FAST)
def test_no_grad_forward(backend):
    x = make_inputs(2, 8, 4, 30, 2, seed=8)  # inputs require grad, but grad mode is off
    with torch.no_grad():
        out, last = selective_scan(*x.args(), delta_softplus=True, return_last_state=True, backend=backend)
    assert not out.requires_grad and not last.requires_grad
    expected, expected_last = _run(_double(x), "reference", last=True)
    torch.testing.assert_close(out, expected.float(), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(last, expected_last.float(), rtol=1e-3, atol=1e-4)


def test_spec_tiny_vector_through_gate_and_bias():
    # y = [1, e^-1, e^-2] (spec D.2); delta_bias shifts delta 0 -> 1, z = large makes silu(z) ~ z
    u = torch.tensor([[[1.0, 0.0, 0.0]]])
    for backend in FAST:
        out = selective_scan(
            u,
            torch.zeros(1, 1, 3),
            -torch.ones(1, 1),
            torch.ones(1, 1, 3),
            torch.ones(1, 1, 3),
            z=torch.full((1, 1, 3), 30.0),
            delta_bias=torch.ones(1),
            backend=backend,
        )
        expected = torch.tensor([1.0, torch.e**-1, torch.e**-2]) * 30.0 * torch.sigmoid(torch.tensor(30.0))
        torch.testing.assert_close(out[0, 0], expected, rtol=1e-6, atol=1e-6, msg=backend)


@pytest.mark.parametrize("backend", [*FAST, "reference"])
def test_environment_variable_forces_auto(backend, monkeypatch):
    x = make_inputs(1, 4, 3, 20, 1, requires_grad=False, seed=9)
    monkeypatch.setenv("SSMAD_SCAN_BACKEND", backend)
    assert resolve_backend("auto", "cpu") == backend
    assert resolve_backend("auto", torch.device("cpu")) == backend
    forced = selective_scan(*x.args(), delta_softplus=True)
    explicit = selective_scan(*x.args(), delta_softplus=True, backend=backend)
    assert torch.equal(forced, explicit)
    # an explicit argument wins over the variable
    other = "reference" if backend != "reference" else FAST[0]
    assert resolve_backend(other, "cpu") == other


def test_auto_without_variable_is_the_fastest(monkeypatch):
    monkeypatch.delenv("SSMAD_SCAN_BACKEND", raising=False)
    assert resolve_backend("auto", "cpu") == available_backends("cpu")[0] != "reference"


def test_unavailable_backend_raises_missing_dependency(monkeypatch):
    x = make_inputs(1, 4, 3, 5, 1, requires_grad=False)
    with pytest.raises(MissingDependencyError, match="cuda"):
        selective_scan(*x.args(), backend="cuda")
    monkeypatch.setenv("SSMAD_SCAN_BACKEND", "cuda")
    with pytest.raises(MissingDependencyError, match="cuda"):
        selective_scan(*x.args())
    monkeypatch.setenv("SSMAD_SCAN_BACKEND", "no-such-backend")
    with pytest.raises(ValueError, match="SSMAD_SCAN_BACKEND"):
        selective_scan(*x.args())


def test_oracle_is_sensitive():
    # the comparison helper must fail on a wrong result: a scan with a perturbed decay is caught
    x = make_inputs(2, 8, 4, 30, 2, seed=10)
    fast = dict(zip(NAMES, x.args(), strict=True))
    fast["A"] = fast["A"] * 1.01
    out = _run(fast, "reference")
    expected = _run(_double(x), "reference")
    with pytest.raises(AssertionError):
        torch.testing.assert_close(out, expected.float(), rtol=1e-3, atol=1e-4)
