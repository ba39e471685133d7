"""``ssmad info`` names the backend each device gets and why (a GPU is faked: only the report is tested)."""

from __future__ import annotations

import sys

import torch

from ssmad.cli.main import main
from ssmad.ssm import cuda as cuda_backend


def test_info_reports_the_auto_choice_and_reasons(monkeypatch, capsys):
    monkeypatch.delenv("SSMAD_SCAN_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Fake GPU")
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)  # mamba-ssm not importable
    monkeypatch.setattr(cuda_backend, "_checked", False)
    monkeypatch.setattr(cuda_backend, "_fn", None)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "cuda: Fake GPU" in lines
    cuda_head = next(i for i, line in enumerate(lines) if line.startswith("selective-scan backend on cuda"))
    cuda_rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines[cuda_head + 1 : cuda_head + 5]}
    assert cuda_rows["cuda"][0] == "no" and "mamba-ssm is not importable" in cuda_rows["cuda"][1]
    triton_ok = cuda_rows["triton"][0] == "picked"
    assert lines[cuda_head].endswith("auto -> triton" if triton_ok else "auto -> torch")
    assert any(line.startswith("selective-scan backend on cpu: auto -> ") for line in lines)


def test_info_mentions_the_environment_override(monkeypatch, capsys):
    monkeypatch.setenv("SSMAD_SCAN_BACKEND", "torch")
    assert main(["info"]) == 0
    assert "$SSMAD_SCAN_BACKEND=torch replaces auto" in capsys.readouterr().out
