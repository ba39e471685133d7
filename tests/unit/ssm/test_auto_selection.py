"""``backend="auto"`` on CUDA tensors: mamba-ssm, else triton, else torch — tested by faking what is importable.

No GPU is needed: ``torch.cuda.is_available`` is faked, and so are the packages (a stub ``mamba_ssm`` module tree
in ``sys.modules``, or ``None`` there, which makes an import fail). Only the choice is tested; nothing runs.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest
import torch

from ssmad.errors import MissingDependencyError
from ssmad.ssm import available_backends, explain_backends, resolve_backend
from ssmad.ssm import cuda as cuda_backend


def _fake_mamba_ssm(monkeypatch, importable: bool) -> None:
    names = ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface")
    for name in names:
        if importable:
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            module.selective_scan_fn = lambda *args, **kwargs: None
            monkeypatch.setitem(sys.modules, name, module)
        else:
            monkeypatch.setitem(sys.modules, name, None)
    # forget what an earlier check found
    monkeypatch.setattr(cuda_backend, "_checked", False)
    monkeypatch.setattr(cuda_backend, "_fn", None)


def _fake_triton(monkeypatch, importable: bool) -> None:
    monkeypatch.delitem(sys.modules, "triton.language", raising=False)  # a real import made by another test
    if importable:
        module = types.ModuleType("triton")
        module.__spec__ = importlib.machinery.ModuleSpec("triton", None)
        monkeypatch.setitem(sys.modules, "triton", module)
    else:
        monkeypatch.setitem(sys.modules, "triton", None)


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.delenv("SSMAD_SCAN_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize(
    ("mamba", "triton", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "triton"), (False, False, "torch")],
)
def test_auto_on_cuda_prefers_mamba_ssm_then_triton_then_torch(fake_gpu, monkeypatch, mamba, triton, expected):
    _fake_mamba_ssm(monkeypatch, mamba)
    _fake_triton(monkeypatch, triton)
    assert resolve_backend("auto", "cuda") == expected
    assert resolve_backend("auto", torch.device("cuda", 0)) == expected
    chosen, rows = explain_backends("cuda")
    assert chosen == expected
    status = {name: (ok, why) for name, ok, why in rows}
    assert [name for name, _, _ in rows] == ["cuda", "triton", "torch", "export", "reference"]
    assert status["cuda"][0] is mamba and status["triton"][0] is triton
    if not mamba:
        assert "mamba-ssm is not importable" in status["cuda"][1]
    if not triton:
        assert "triton is not installed" in status["triton"][1]
    assert available_backends("cuda")[0] == expected


def test_auto_on_cpu_never_picks_triton(monkeypatch):
    monkeypatch.delenv("SSMAD_SCAN_BACKEND", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    _fake_triton(monkeypatch, True)
    assert "triton" not in available_backends("cpu")
    assert resolve_backend("auto", "cpu") != "triton"
    # but it may be asked for explicitly (the interpreter runs it)
    assert resolve_backend("triton", "cpu") == "triton"


def test_without_a_gpu_the_gpu_backends_are_unavailable(monkeypatch):
    monkeypatch.delenv("SSMAD_SCAN_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    chosen, rows = explain_backends("cuda")
    assert chosen == "torch"
    assert {name: why for name, _, why in rows}["triton"] == "no CUDA device"


def test_explicit_triton_without_triton_names_the_fix(fake_gpu, monkeypatch):
    _fake_triton(monkeypatch, False)
    with pytest.raises(MissingDependencyError, match="install triton"):
        resolve_backend("triton", "cuda")
