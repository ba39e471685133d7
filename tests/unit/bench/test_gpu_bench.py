"""``ssmad bench gpu`` without a GPU: the refusal, the JSON writer, the roofline arithmetic, the ratios and goals,
the pytest runner, and the sections run on the CPU with tiny settings (the GPU numbers need a GPU)."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch

from ssmad.bench import gpu
from ssmad.bench.scan import SHAPES, ScanShape
from ssmad.cli.main import main
from ssmad.errors import InputError
from ssmad.ssm import available_backends

TINY = ScanShape("tiny", 1, 4, 3, 19, 2, "test shape")


def test_without_cuda_the_command_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "report.json"
    assert main(["bench", "gpu", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA device" in err and "torch.cuda.is_available()" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_report_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "report.json"
    out.write_text("{}")
    assert main(["bench", "gpu", "--json", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_write_json_new_is_atomic_and_refuses_existing_files(tmp_path):
    path = tmp_path / "sub" / "r.json"
    gpu.write_json_new(path, {"a": 1, "nan": math.nan})
    assert json.loads(path.read_text().replace("NaN", "null")) == {"a": 1, "nan": None}
    with pytest.raises(InputError, match="exists already"):
        gpu.write_json_new(path, {"a": 2})
    assert json.loads(path.read_text().replace("NaN", "null"))["a"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_roofline_bound_by_hand():
    shape = next(s for s in SHAPES if s.name == "mad_s3")  # batch 2, D 1024, N 16, L 4096, G 8
    # bytes: u, delta, y: 3 * 2*1024*4096 floats; B, C: 2 * 2*8*16*4096 floats; 4 bytes each
    assert gpu.scan_bytes(shape) == 4 * (3 * 8_388_608 + 2 * 1_048_576) == 109_051_904
    memory_bound = gpu.GpuLimits(bandwidth=1e12, flops=1e15)
    assert memory_bound.forward_bound(shape) == pytest.approx(109_051_904 / 1e12)
    assert memory_bound.fwd_bwd_bound(shape) == pytest.approx(2.5 * 109_051_904 / 1e12)
    compute_bound = gpu.GpuLimits(bandwidth=1e15, flops=1e12)
    # 9 FLOPs per state update, 2*1024*4096*16 = 134_217_728 updates
    assert compute_bound.forward_bound(shape) == pytest.approx(9 * 134_217_728 / 1e12)


def _rows(triton_s: float, torch_s: float, cuda_s: float | None) -> list[gpu.ScanRow]:
    rows = [gpu.ScanRow("s", "triton", triton_s / 2, triton_s), gpu.ScanRow("s", "torch", torch_s / 3, torch_s)]
    if cuda_s is not None:
        rows.append(gpu.ScanRow("s", "cuda", cuda_s / 2, cuda_s))
    return rows


def test_ratios_and_goals():
    rows = _rows(1.0, 6.0, 0.9)
    gpu.add_ratios(rows, bound_fwd=0.2)  # fwd+bwd bound 0.5 s
    tri = rows[0].ratios
    assert tri["fwd_bwd_speedup_vs_torch"] == pytest.approx(6.0)
    assert tri["fwd_bwd_speedup_vs_cuda"] == pytest.approx(0.9)
    assert tri["forward_speedup_vs_torch"] == pytest.approx(2.0 / 0.5)
    assert tri["fwd_bwd_over_bound"] == pytest.approx(2.0) and tri["forward_over_bound"] == pytest.approx(2.5)
    assert gpu.goals(rows) == {"vs_mamba_ssm": True, "vs_torch": True, "within_bound": True}

    slow = _rows(2.0, 6.0, 1.0)
    gpu.add_ratios(slow, bound_fwd=0.2)
    assert gpu.goals(slow) == {"vs_mamba_ssm": False, "vs_torch": False, "within_bound": False}  # 4x the bound
    no_mamba = _rows(1.4, 20.0, None)
    gpu.add_ratios(no_mamba, bound_fwd=0.2)
    assert gpu.goals(no_mamba) == {"vs_mamba_ssm": None, "vs_torch": True, "within_bound": True}  # 2.8x the bound
    table = gpu.format_scan_table(rows, gpu.GpuLimits(3e12, 5e13))
    assert "| s | triton | 500.000 | 1000.000 | 0.90x vs cuda, 6.00x vs torch |" in table


def test_budget_with_a_fake_clock():
    now = [100.0]
    budget = gpu.Budget(10.0, clock=lambda: now[0])
    now[0] = 104.0
    assert budget.elapsed() == 4.0 and budget.left() == 6.0


def test_pytest_summary_parsing():
    ok = gpu.summarize_pytest(0, "....\n===== 4 passed, 1 skipped in 3.21s =====\n", 3.3, "pytest")
    assert ok["status"] == "passed" and ok["summary"] == "4 passed, 1 skipped in 3.21s"
    bad = gpu.summarize_pytest(1, "F.\nFAILED x::y - boom\n1 failed, 1 passed in 0.5s\n", 0.6, "pytest")
    assert bad["status"] == "failed" and "FAILED x::y" in bad["output_tail"]
    assert gpu.summarize_pytest(5, "no tests ran in 0.1s", 0.1, "pytest")["status"] == "no tests collected"


def test_run_gpu_tests_runs_only_gpu_marked_tests(tmp_path):
    root = tmp_path / "repo"
    folder = root / "tests" / "gpu"
    folder.mkdir(parents=True)
    (folder / "test_x.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.gpu
            def test_selected():
                assert 1 + 1 == 2

            def test_not_selected():
                raise AssertionError("must be deselected")
            """
        )
    )
    (root / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    result = gpu.run_gpu_tests(folder, timeout_s=120)
    assert result["status"] == "passed", result
    assert "1 passed" in result["summary"] and "1 deselected" in result["summary"]
    assert gpu.run_gpu_tests(None, 1)["status"] == "skipped"


def test_scan_section_on_the_cpu():
    device = torch.device("cpu")
    limits = gpu.measure_limits(device, repeats=1)
    assert limits.bandwidth > 0 and limits.flops > 0
    rows = gpu.bench_scan_shape(TINY, ["torch", "reference"], device, repeats=1, limits=limits)
    assert [r.method for r in rows] == ["torch", "reference"]
    for r in rows:
        assert 0 < r.forward < 10 and 0 < r.fwd_bwd < 10
        assert r.max_rel_diff_vs_torch < 1e-5  # both compute the same scan
        assert r.ratios["fwd_bwd_over_bound"] == pytest.approx(r.fwd_bwd / limits.fwd_bwd_bound(TINY))


def test_the_whole_command_on_the_cpu_with_stand_ins(tmp_path, monkeypatch, capsys):
    # the device check, the huge shapes, the test subprocess and the 256x256 models are replaced; the rest runs
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(gpu, "require_cuda", lambda: torch.device("cpu"))
    monkeypatch.setattr(gpu, "SHAPES", (TINY,))
    monkeypatch.setattr(gpu, "measure_limits", lambda device: gpu.GpuLimits(1e10, 1e11))
    monkeypatch.setattr(gpu, "run_gpu_tests", lambda folder, timeout_s: {"status": "passed", "summary": "stub"})
    calls = []

    def fake_models(backends, device, **kwargs):
        calls.append(list(backends))
        return [gpu.ModelRow(b, 0.5, 2.0, 16) for b in backends], "random initialisation (test)"

    monkeypatch.setattr(gpu, "bench_mambaad", fake_models)
    out = tmp_path / "r.json"
    assert main(["bench", "gpu", "--json", str(out), "--shapes", "tiny", "--repeats", "1"]) == 0
    report = json.loads(out.read_text().replace("NaN", "null"))
    assert report["gpu_tests"]["status"] == "passed"
    assert report["scan"]["methods"] == ["torch"]  # no triton on CPU tensors without the interpreter, no mamba-ssm
    assert {r["method"] for r in report["scan"]["rows"]} == {"torch"}
    assert report["scan"]["bounds"]["tiny"]["fwd_bwd_s"] == pytest.approx(
        2.5 * report["scan"]["bounds"]["tiny"]["forward_s"]
    )
    assert calls == [[b for b in available_backends("cpu") if b != "reference"]]
    assert report["mambaad"]["rows"][0]["infer_images_per_s"] == pytest.approx(32.0)
    assert report["mambaad"]["rows"][0]["train_images_per_s"] == pytest.approx(8.0)
    assert "random initialisation" in report["mambaad"]["encoder_weights"]
    printed = capsys.readouterr().out
    assert "| tiny | torch |" in printed and f"report written to {out}" in printed


@pytest.mark.slow  # a full-size MambaAD decoder on the CPU: minutes on a shared 2-core machine
def test_mambaad_section_on_the_cpu():
    rows, note = gpu.bench_mambaad(
        ["torch"], torch.device("cpu"), batch=1, size=64, encoder="resnet18", repeats=1, train_repeats=1
    )
    assert [r.backend for r in rows] == ["torch"]
    r = rows[0]
    assert r.infer_s > 0 and r.train_s is not None and r.train_s > 0
    assert r.infer_images_per_s == pytest.approx(1 / r.infer_s)
    assert note
