"""The compiled CPU kernel: build cache, fallback without a compiler, thread-count independence."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ssmad.ssm import backend_available, selective_scan

from .conftest import libgomp_copies, make_inputs

pytestmark = pytest.mark.skipif(not backend_available("cpu"), reason="no C++ compiler: the cpu backend is absent")

PROBE = textwrap.dedent(
    """
    import json, torch
    from ssmad.ssm import available_backends, selective_scan
    torch.manual_seed(0)
    u, delta = torch.randn(1, 4, 9), torch.randn(1, 4, 9)
    A, B, C = -torch.rand(4, 3) - 0.1, torch.randn(1, 3, 9), torch.randn(1, 3, 9)
    out_auto = selective_scan(u, delta, A, B, C, delta_softplus=True)
    out_ref = selective_scan(u, delta, A, B, C, delta_softplus=True, backend="reference")
    print(json.dumps({"backends": available_backends("cpu"), "err": (out_auto - out_ref).abs().max().item()}))
    """
)


def _probe(env_update: dict[str, str], tmp_path) -> dict:
    env = {**os.environ, "SSMAD_CACHE_DIR": str(tmp_path / "cache"), **env_update}
    env.pop("SSMAD_SCAN_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_forced_fallback_without_compiler(tmp_path):
    # SSMAD_NO_COMPILE switches the kernel off; a compiler that fails does too. Everything else still works.
    for env in ({"SSMAD_NO_COMPILE": "1"}, {"CXX": "false", "PATH": str(tmp_path / "empty-bin")}):
        result = _probe(env, tmp_path)
        assert result["backends"] == ["torch", "export", "reference"], env
        assert result["err"] < 1e-5, env
    assert not list((tmp_path / "cache").glob("kernels/*.so"))


def test_kernel_is_compiled_once_and_cached(tmp_path):
    first = _probe({}, tmp_path)
    assert first["backends"][0] == "cpu" and first["err"] < 1e-5
    libs = list((tmp_path / "cache" / "kernels").glob("*.so"))
    assert len(libs) == 1
    stamp = libs[0].stat().st_mtime_ns
    second = _probe({}, tmp_path)
    assert second["backends"][0] == "cpu"
    assert [p.stat().st_mtime_ns for p in (tmp_path / "cache" / "kernels").glob("*.so")] == [stamp]
    assert not list((tmp_path / "cache" / "kernels").glob("*.tmp"))


@pytest.mark.parametrize("groups", [1, 4])
def test_result_independent_of_thread_count(groups):
    x = make_inputs(batch=1, dim=40, dstate=16, length=130, groups=groups)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            out = selective_scan(*x.args(), delta_softplus=True, backend="cpu")
            grads = torch.autograd.grad(out.square().sum(), list(x.tensors().values()))
            results.append((out.detach(), grads))
    finally:
        torch.set_num_threads(threads)
    (o1, g1), (o3, g3) = results
    torch.testing.assert_close(o1, o3, rtol=0, atol=0)  # the forward splits work, never sums across threads
    for a, b in zip(g1, g3, strict=True):
        # dB/dC partial sums may be added in another order: float32 rounding of the order of the largest values
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


def test_wrong_device_or_dtype_is_rejected():
    from ssmad.ssm import cpu

    x = make_inputs(requires_grad=False)
    with pytest.raises(ValueError, match="float32/float64"):
        cpu.core(x.u.half(), x.delta.half(), x.A.half(), x.B.half(), x.C.half(), None, False)


def _openmp_lib():
    from ssmad.ssm import cpu

    lib = cpu.load_library()
    if lib is None or not lib.ssmad_scan_openmp():
        pytest.skip("kernel built without OpenMP (torch not on GNU OpenMP here, or SSMAD_NO_OPENMP=1)")
    return cpu, lib


def test_openmp_build_binds_to_torchs_runtime():
    _openmp_lib()
    gomp = libgomp_copies()
    assert len(gomp) == 1, f"two copies of libgomp.so.1 loaded (the kernel did not bind to torch's): {gomp}"


def test_openmp_region_and_thread_pool_agree(monkeypatch):
    # plain scan and the fused K-direction scan, forward and backward: the same items, split the same way
    from ssmad.scans import direction_tables
    from ssmad.ssm import directional_scan

    from .test_directional import make_case

    cpu, lib = _openmp_lib()
    monkeypatch.setattr(cpu, "SERIAL_UPDATES", 0)  # split even these small calls over threads
    x = make_inputs(batch=2, dim=40, dstate=16, length=70, groups=4)
    case = make_case(batch=2, length=30, dim=24, k=4, rank=3, dstate=16, dtype=torch.float32)
    index, _ = direction_tables("hilbert", 5, 6, 4)

    def run():
        fresh = {k: v.detach().requires_grad_() for k, v in x.tensors().items()}
        out = selective_scan(**fresh, delta_softplus=True, backend="cpu")
        grads = torch.autograd.grad(out.square().sum(), list(fresh.values()))
        leaves = [t.detach().requires_grad_() for t in case[:6]]
        y = directional_scan(*leaves, index, backend="cpu")
        return (out.detach(), *grads, y.detach(), *torch.autograd.grad(y.square().sum(), leaves))

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        region = run()
        monkeypatch.setattr(lib, "ssmad_scan_openmp", lambda: 0)  # the Python thread pool instead
        pool = run()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(region, pool, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_build_cache_follows_the_included_headers(tmp_path, monkeypatch):
    # kernel sources include kernel_common.h: editing a header must build a new library, not reuse the cached one
    from ssmad.ssm import cpu

    if cpu._compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("SSMAD_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "kernel.cpp").write_text('#include "value.h"\nextern "C" int value() { return VALUE; }\n')
    (src / "value.h").write_text("#define VALUE 1\n")
    first = cpu._compile(cpu._compiler(), src / "kernel.cpp")
    assert cpu._compile(cpu._compiler(), src / "kernel.cpp") == first  # unchanged: the cached library
    (src / "value.h").write_text("#define VALUE 2\n")
    second = cpu._compile(cpu._compiler(), src / "kernel.cpp")
    assert second != first
    assert ctypes.CDLL(str(first)).value() == 1 and ctypes.CDLL(str(second)).value() == 2


@pytest.mark.parametrize("groups", [1, 2])
def test_32_byte_vector_build_matches_reference(narrow_scan_kernel, scan_inputs, groups):
    # 40 channels in one group (five blocks of 8 lanes), or two groups of 20 (two blocks of 8 and a tail of 4 each)
    x = scan_inputs(batch=2, dim=40, dstate=16, length=50, groups=groups, dtype=torch.float64)
    got = selective_scan(*x.args(), delta_softplus=True, backend="cpu")
    want = selective_scan(*x.args(), delta_softplus=True, backend="reference")
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    grads = torch.autograd.grad(got.square().sum(), list(x.tensors().values()))
    grads_ref = torch.autograd.grad(want.square().sum(), list(x.tensors().values()))
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
