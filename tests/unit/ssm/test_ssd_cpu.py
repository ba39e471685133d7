"""ssd_scan's compiled ``cpu`` backend against the sequential reference: values, final state and every gradient."""

from __future__ import annotations

import ctypes

import pytest
import torch

from ssmad.errors import MissingDependencyError
from ssmad.ssm import cpu, ssd_cpu, ssd_scan, ssd_scan_ref
from ssmad.ssm.ssd import _resolve

from .conftest import libgomp_copies
from .test_ssd import assert_rel, make_ssd

pytestmark = pytest.mark.skipif(not ssd_cpu.is_available(), reason="no C++ compiler for the ssd_scan CPU kernel")

F64 = torch.float64


def _run(backend, t, h0, *, softplus=True, D=None):
    """Output, final state and gradients of a loss touching every output element and the final state."""
    inputs = {**t, "D": t["D"] if D is None else D}
    y, last = ssd_scan(
        inputs["x"],
        inputs["dt"],
        inputs["A"],
        inputs["B"],
        inputs["C"],
        D=inputs["D"],
        z=inputs["z"],
        dt_bias=inputs["dt_bias"],
        dt_softplus=softplus,
        initial_states=h0,
        return_final_states=True,
        backend=backend,
    )
    weights = torch.linspace(-1.0, 2.0, y.numel(), dtype=F64).view_as(y).to(y.dtype)
    loss = (y * weights).sum() + (last * last.detach().sin()).sum()
    leaves = [*inputs.values(), h0]
    grads = torch.autograd.grad(loss, leaves)
    return y, last, dict(zip([*inputs.keys(), "initial_states"], grads, strict=True))


def _h0(t, dtype=F64):
    batch, _, heads, headdim = t["x"].shape
    g = torch.Generator().manual_seed(7)
    return torch.randn(batch, heads, headdim, t["B"].shape[3], generator=g, dtype=F64).to(dtype).requires_grad_(True)


@pytest.mark.parametrize(
    ("length", "heads", "groups", "headdim", "dstate", "softplus"),
    [
        (150, 4, 2, 3, 5, True),  # crosses two chunk boundaries, L not a multiple of the chunk, G < H
        (1, 4, 1, 3, 5, True),  # a single step, all heads in one group
        (70, 2, 2, 16, 16, False),  # the P = N = 16 specialisation (MambaADv2's shapes), no softplus
        (64, 3, 3, 16, 16, True),  # exactly one chunk
        (45, 20, 1, 16, 16, True),  # one group of 20 heads: several backward blocks of heads, their dB, dC summed
        (33, 18, 2, 3, 5, True),  # two groups of 9 heads (a last block of 1 head), runtime sizes
    ],
)
def test_matches_reference_float64(length, heads, groups, headdim, dstate, softplus):
    t = make_ssd(length=length, heads=heads, groups=groups, headdim=headdim, dstate=dstate, softplus=softplus)
    if not softplus:  # keep dt + dt_bias positive: a negative step makes the state grow exponentially
        t["dt_bias"] = t["dt_bias"].detach().abs().requires_grad_(True)
    h0 = _h0(t)
    y, last, grads = _run("cpu", t, h0, softplus=softplus)
    y_ref, last_ref, grads_ref = _run("reference", t, h0, softplus=softplus)
    assert_rel(y, y_ref, 1e-9, "y")
    assert_rel(last, last_ref, 1e-9, "final state")
    for name, g_ref in grads_ref.items():
        assert_rel(grads[name], g_ref, 1e-9, f"d{name}")


def test_per_channel_D():
    # D of shape (H, P).
    t = make_ssd(length=37)
    D = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    h0 = _h0(t)
    y, last, grads = _run("cpu", t, h0, D=D)
    y_ref, last_ref, grads_ref = _run("reference", t, h0, D=D)
    assert_rel(y, y_ref, 1e-9, "y")
    assert_rel(last, last_ref, 1e-9, "final state")
    for name, g_ref in grads_ref.items():
        assert_rel(grads[name], g_ref, 1e-9, f"d{name}")


def test_float32_close_to_float64_reference():
    t64 = make_ssd(length=150, heads=4, groups=4, headdim=16, dstate=16)
    t32 = {k: v.detach().float().requires_grad_(True) for k, v in t64.items()}
    h0 = _h0(t64)
    y, last, grads = _run("cpu", t32, h0.detach().float().requires_grad_(True))
    y_ref, last_ref, grads_ref = _run("reference", t64, h0)
    assert y.dtype == torch.float32 and last.dtype == torch.float32
    assert_rel(y.double(), y_ref, 1e-4, "y")
    assert_rel(last.double(), last_ref, 1e-4, "final state")
    for name, g_ref in grads_ref.items():
        assert_rel(grads[name].double(), g_ref, 1e-4, f"d{name}")


def test_no_grad_forward_and_half_inputs():
    t = make_ssd(length=40, heads=2, groups=1, headdim=16, dstate=16, requires_grad=False)
    args = (t["x"], t["dt"], t["A"], t["B"], t["C"])
    kw = dict(D=t["D"], z=t["z"], dt_bias=t["dt_bias"], dt_softplus=True)
    assert_rel(ssd_scan(*args, **kw, backend="cpu"), ssd_scan_ref(*args, **kw), 1e-12, "no-grad y")
    half = [a.half() for a in args]
    y_half = ssd_scan(*half, dt_softplus=True, backend="cpu")
    assert y_half.dtype == torch.float16
    assert_rel(y_half.double(), ssd_scan_ref(*[a.double() for a in half], dt_softplus=True), 2e-3, "float16 y")


def test_result_independent_of_thread_count(monkeypatch):
    monkeypatch.setattr(cpu, "SERIAL_UPDATES", 0)  # split even this small call over threads
    t = make_ssd(length=90, heads=6, groups=3, headdim=16, dstate=16, dtype=torch.float32)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(_run("cpu", t, _h0(t, torch.float32)))
    finally:
        torch.set_num_threads(threads)
    (y1, h1, g1), (y3, h3, g3) = results
    torch.testing.assert_close(y1, y3, rtol=0, atol=0)  # items are independent: no sums across threads
    torch.testing.assert_close(h1, h3, rtol=0, atol=0)
    for name in g1:
        torch.testing.assert_close(g1[name], g3[name], rtol=0, atol=0)


def test_auto_picks_the_kernel_for_cpu_tensors(monkeypatch):
    monkeypatch.delenv("SSMAD_SCAN_BACKEND", raising=False)
    x = torch.zeros(1, 2, 1, 1)
    assert _resolve("auto", x) == "cpu"
    assert _resolve("torch", x) == "torch"
    for forced, expected in (("torch", "torch"), ("reference", "reference"), ("cuda", "cpu"), ("", "cpu")):
        monkeypatch.setenv("SSMAD_SCAN_BACKEND", forced)  # the selective scan's override applies to auto only
        assert _resolve("auto", x) == expected, forced
        assert _resolve("cpu", x) == "cpu"


@pytest.mark.parametrize(
    ("length", "headdim", "dstate", "heads", "groups"),
    [(75, 3, 5, 4, 2), (70, 16, 16, 4, 2), (1, 16, 16, 4, 2), (40, 16, 16, 12, 1), (29, 3, 5, 10, 1)],
)
def test_trapezoid_rule_matches_reference_float64(length, headdim, dstate, heads, groups):
    # the kernel applies the correction c_next (C·B) x itself; G = 1 with 10-12 heads sums over backward blocks
    t = make_ssd(length=length, headdim=headdim, dstate=dstate, heads=heads, groups=groups)
    lam = torch.rand(2, length, heads, dtype=F64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    h0 = _h0(t)
    results = {}
    for backend in ("cpu", "reference"):
        y, last = ssd_scan(
            **{k: t[k] for k in ("x", "dt", "A", "B", "C")},
            D=t["D"], z=t["z"], dt_bias=t["dt_bias"], dt_softplus=True, initial_states=h0,
            trapezoid_lambda=lam, return_final_states=True, backend=backend,
        )  # fmt: skip
        weights = torch.linspace(-1.0, 2.0, y.numel(), dtype=F64).view_as(y)
        loss = (y * weights).sum() + (last * last.detach().sin()).sum()
        results[backend] = (y, last, torch.autograd.grad(loss, [*t.values(), h0, lam]))
    (y, last, grads), (y_ref, last_ref, grads_ref) = results["cpu"], results["reference"]
    assert_rel(y, y_ref, 1e-9, "y")
    assert_rel(last, last_ref, 1e-9, "final state")
    for name, g, g_ref in zip([*t.keys(), "initial_states", "lambda"], grads, grads_ref, strict=True):
        assert_rel(g, g_ref, 1e-9, f"d{name}")


def test_build_failure_falls_back_to_torch(monkeypatch, caplog):
    def broken_build():
        raise RuntimeError("compiling the CPU kernel ssd_scan_cpu.cpp failed: simulated")

    monkeypatch.setattr(ssd_cpu, "_lib", None)
    monkeypatch.setattr(ssd_cpu, "_load_failed", None)
    monkeypatch.setattr(ssd_cpu, "_build", broken_build)
    monkeypatch.delenv("SSMAD_NO_COMPILE", raising=False)
    t = make_ssd(length=30)
    h0 = _h0(t)
    with caplog.at_level("WARNING", logger="ssmad.ssm.ssd_cpu"):
        y, last, grads = _run("auto", t, h0)
    assert not ssd_cpu.is_available()
    assert "simulated" in caplog.text and "using torch instead" in caplog.text
    y_ref, last_ref, grads_ref = _run("reference", t, h0)
    assert_rel(y, y_ref, 1e-9, "y")
    assert_rel(last, last_ref, 1e-9, "final state")
    assert_rel(grads["A"], grads_ref["A"], 1e-9, "dA")
    with pytest.raises(MissingDependencyError, match="backend 'cpu' is not available"):
        ssd_scan(t["x"], t["dt"], t["A"], t["B"], t["C"], backend="cpu")


def test_float32_gradients_stay_precise_over_long_sequences():
    # MambaADv2's finest stage scans 4096 cells: the float32 decay gradients (dt, A, dt_bias) against the float64
    # kernel, which the tests above hold to the reference.
    t64 = make_ssd(batch=1, length=4096, heads=2, groups=1, headdim=16, dstate=16)
    t32 = {k: v.detach().float().requires_grad_(True) for k, v in t64.items()}
    h0 = _h0(t64)
    y, last, grads = _run("cpu", t32, h0.detach().float().requires_grad_(True))
    y_ref, last_ref, grads_ref = _run("cpu", t64, h0)
    assert_rel(y.double(), y_ref, 1e-5, "y")
    assert_rel(last.double(), last_ref, 1e-5, "final state")
    for name, g_ref in grads_ref.items():
        assert_rel(grads[name].double(), g_ref, 2e-5, f"d{name}")


def test_openmp_build_binds_to_torchs_runtime():
    if not cpu.shares_torch_openmp():
        pytest.skip("torch has not loaded GNU OpenMP here: the kernel is built without -fopenmp")
    lib = ssd_cpu.load_library()
    assert lib.ssmad_ssd_openmp() == 1
    gomp = libgomp_copies()
    assert len(gomp) == 1, f"two copies of libgomp.so.1 loaded (the kernel did not bind to torch's): {gomp}"


def test_openmp_region_and_thread_pool_agree(monkeypatch):
    lib = ssd_cpu.load_library()
    if not lib.ssmad_ssd_openmp():
        pytest.skip("kernel built without OpenMP")
    monkeypatch.setattr(cpu, "SERIAL_UPDATES", 0)  # split even this small call over threads
    t = make_ssd(length=90, heads=6, groups=3, headdim=16, dstate=16, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        y1, h1, g1 = _run("cpu", t, _h0(t, torch.float32))
        monkeypatch.setattr(lib, "ssmad_ssd_openmp", lambda: 0)  # the Python thread pool instead
        y2, h2, g2 = _run("cpu", t, _h0(t, torch.float32))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    torch.testing.assert_close(h1, h2, rtol=0, atol=0)
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=0, atol=0)


@pytest.mark.parametrize("length,heads,groups", [(70, 2, 2), (45, 20, 1)])
def test_32_byte_vector_build_matches_reference(monkeypatch, length, heads, groups):
    # Where the CPU has AVX-512 the P = N = 16 kernels use 64-byte vectors; the 32-byte build (other CPUs) is
    # compiled here with -DSSMAD_NO_AVX512 and held to the reference too.
    if ssd_cpu.load_library().ssmad_ssd_vector_bytes() != 64:
        pytest.skip("the kernel uses 32-byte vectors here: the tests above cover them")
    path = cpu._compile(cpu._compiler(), ssd_cpu.SOURCE, (*ssd_cpu._EXTRA_FLAGS, "-DSSMAD_NO_AVX512"))
    narrow = ctypes.CDLL(str(path))
    ssd_cpu._declare(narrow)
    assert narrow.ssmad_ssd_vector_bytes() == 32
    monkeypatch.setattr(ssd_cpu, "_lib", narrow)
    t = make_ssd(length=length, heads=heads, groups=groups, headdim=16, dstate=16)
    h0 = _h0(t)
    y, last, grads = _run("cpu", t, h0)
    y_ref, last_ref, grads_ref = _run("reference", t, h0)
    assert_rel(y, y_ref, 1e-9, "y")
    assert_rel(last, last_ref, 1e-9, "final state")
    for name, g_ref in grads_ref.items():
        assert_rel(grads[name], g_ref, 1e-9, f"d{name}")
