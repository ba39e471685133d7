"""The ``triton`` backend on a machine without a GPU: its kernels in Triton's interpreter (in a fresh process),
and everything that needs no kernel — refusals with their fixes, launch geometry, lazy import."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssmad.errors import MissingDependencyError
from ssmad.ssm import selective_scan
from ssmad.ssm import triton_scan as ts

from .conftest import make_inputs

needs_triton = pytest.mark.skipif(not ts.triton_importable(), reason="triton is not installed")
CASES = Path(__file__).with_name("triton_interpreter_cases.py")
ROOT = Path(__file__).resolve().parents[3]


@needs_triton
def test_kernels_match_the_float64_reference_in_the_interpreter():
    # Triton reads TRITON_INTERPRET when it is imported, and this process may have imported it already: the
    # kernel tests (tests/unit/ssm/triton_interpreter_cases.py) run in a fresh process that has it from the start
    env = dict(os.environ, TRITON_INTERPRET="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(CASES)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    summary = re.search(r"(\d+) passed", tail)
    collected = CASES.read_text().count("\ndef test_")
    assert summary and int(summary.group(1)) >= collected, tail  # every test ran (parametrised ones count more)
    assert "skipped" not in tail.splitlines()[-1], tail


def test_cpu_tensors_without_the_interpreter_are_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = make_inputs(1, 4, 3, 5, 1, requires_grad=False)
    with pytest.raises(MissingDependencyError, match="TRITON_INTERPRET=1"):
        selective_scan(*x.args(), backend="triton")


@needs_triton
def test_interpreter_asked_for_after_triton_was_imported_is_refused(monkeypatch):
    import triton.language  # noqa: F401  (this process: compiled form, unless started with TRITON_INTERPRET=1)

    from ssmad.ssm import _triton_kernels

    if _triton_kernels.INTERPRETED:
        pytest.skip("this process was started with TRITON_INTERPRET=1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    ok, why = ts.status("cpu")
    assert not ok and "before starting Python" in why
    x = make_inputs(1, 4, 3, 5, 1, requires_grad=False)
    with pytest.raises(MissingDependencyError, match="before starting Python"):
        selective_scan(*x.args(), backend="triton")
    monkeypatch.setattr(ts, "_imported_for_a_gpu", lambda: False)  # even past the status check, the kernels refuse
    with pytest.raises(MissingDependencyError, match="imported in this process before"):
        selective_scan(*x.args(), backend="triton")


def test_block_geometry(monkeypatch):
    monkeypatch.setattr(ts, "CHUNK", 4)
    monkeypatch.setattr(ts, "TILE", 32)
    assert ts.chunk_steps(1) == 2 and ts.chunk_steps(3) == 4 and ts.chunk_steps(1000) == 4
    # TILE = 32, N padded to 4, T = 4: two channels per program; never more than the group has (padded)
    assert ts.block_channels(128, 4, 4) == 2
    assert ts.block_channels(1, 4, 4) == 2
    monkeypatch.setattr(ts, "TILE", 4096)
    assert ts.block_channels(128, 16, 32) == 8 and ts.block_channels(3, 16, 32) == 4
    monkeypatch.setattr(ts, "CHUNK", 6)
    with pytest.raises(ValueError, match="power of two"):
        ts.chunk_steps(10)


def test_channel_blocks_shrink_until_the_gpu_has_enough_programs(monkeypatch):
    monkeypatch.setattr(ts, "CHUNK", 32)
    monkeypatch.setattr(ts, "TILE", 4096)
    cpu = torch.device("cpu")
    # mad_s3: batch 2, 8 groups of 128 channels, N 16: 8 channels per program from the tile, 256 programs
    assert ts.scan_geometry(2, 8, 128, 16, 4096, cpu) == dict(
        steps=32, block_n=16, block_d=8, n_chunks=128, n_blocks=16
    )
    monkeypatch.setattr(ts, "_min_programs", lambda device: 264)  # 2 per SM on a 132-SM GPU
    assert ts.scan_geometry(2, 8, 128, 16, 4096, cpu)["block_d"] == 4  # 512 programs
    assert ts.scan_geometry(1, 2, 512, 16, 10_000, cpu)["block_d"] == 2  # acm_infer: 512 programs
    assert ts.scan_geometry(1, 1, 2, 16, 10, cpu)["block_d"] == 2  # never below 2


def test_import_ssmad_does_not_import_triton():
    code = (
        "import sys, torch, ssmad, ssmad.ssm as s\n"
        "x = torch.randn(1, 2, 3)\n"
        "s.selective_scan(x, x, -torch.ones(2, 1), torch.ones(1, 1, 3), torch.ones(1, 1, 3))\n"
        "s.explain_backends('cpu'); s.explain_backends('cuda')\n"
        "assert 'triton' not in sys.modules, 'triton was imported'\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
