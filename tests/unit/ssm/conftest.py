"""Random selective-scan inputs shaped like the real callers (SS2D, RSAL)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F


@dataclass
class ScanInputs:
    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None
    z: torch.Tensor | None
    delta_bias: torch.Tensor | None

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    def args(self) -> tuple:
        return (self.u, self.delta, self.A, self.B, self.C, self.D, self.z, self.delta_bias)


def make_inputs(
    batch: int = 2,
    dim: int = 8,
    dstate: int = 4,
    length: int = 16,
    groups: int | None = 2,
    *,
    has_D: bool = True,
    has_z: bool = True,
    has_bias: bool = True,
    dtype: torch.dtype = torch.float32,
    requires_grad: bool = True,
    seed: int = 0,
) -> ScanInputs:
    """Inputs with realistic ranges: softplus(delta) ~ 0.001..0.5, A = -(1..N)-like, B, C ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)

    bc_shape = (batch, dstate, length) if groups is None else (batch, groups, dstate, length)
    A = -torch.exp(torch.rand(dim, dstate, generator=g, dtype=torch.float64) * 2.5).to(dtype)
    inputs = ScanInputs(
        u=rnd(batch, dim, length),
        delta=rnd(batch, dim, length, scale=0.5, shift=-2.0),
        A=A,
        B=rnd(*bc_shape),
        C=rnd(*bc_shape),
        D=rnd(dim) if has_D else None,
        z=rnd(batch, dim, length) if has_z else None,
        delta_bias=(F.softplus(rnd(dim, scale=0.5)) * 0.3).to(dtype) if has_bias else None,
    )
    if requires_grad:
        for t in inputs.tensors().values():
            t.requires_grad_(True)
    return inputs


@pytest.fixture
def scan_inputs():
    return make_inputs


def libgomp_copies() -> set[str]:
    """Paths of the ``libgomp.so*`` files mapped into this process (renamed copies ``libgomp-<hash>.so`` that other
    wheels vendor are their own runtimes and not counted)."""
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if line.rstrip().split("/")[-1].startswith("libgomp.so")}


@pytest.fixture
def narrow_scan_kernel(monkeypatch):
    """The selective-scan kernel built with 32-byte vectors (-DSSMAD_NO_AVX512), in place of the loaded one.

    Where the CPU has AVX-512 the kernel uses 64-byte vectors; other CPUs run the 32-byte build, which this fixture
    puts under test here. Skips where the loaded kernel already uses 32-byte vectors (the other tests cover it).
    """
    import ctypes

    from ssmad.ssm import cpu

    lib = cpu.load_library()
    if lib is None or lib.ssmad_scan_vector_bytes() != 64:
        pytest.skip("the kernel uses 32-byte vectors here: the other tests cover them")
    narrow = ctypes.CDLL(str(cpu._compile(cpu._compiler(), cpu.SOURCE, ("-DSSMAD_NO_AVX512",))))
    cpu._declare(narrow)
    assert narrow.ssmad_scan_vector_bytes() == 32
    monkeypatch.setattr(cpu, "_lib", narrow)
    return narrow
