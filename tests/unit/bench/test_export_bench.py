"""``ssmad bench export``: paired rounds, a table and a JSON report (tiny RD4AD; the timings are not checked)."""

from __future__ import annotations

import json

import pytest

from ssmad.errors import ConfigError, InputError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def test_paired_rounds_table_and_json(tmp_path, capsys):
    from ssmad.bench.export import run_export_benchmark

    out = tmp_path / "bench.json"
    report = run_export_benchmark(models=["rd4ad"], encoder="resnet18", size=64, rounds=2, threads=1, json_path=out)
    (fig,) = report.models
    assert len(fig.torch_times) == len(fig.ort_times) == len(fig.ratios) == 2
    assert fig.ratios == [o / t for o, t in zip(fig.ort_times, fig.torch_times, strict=True)]
    assert fig.max_rel_diff < 1e-4 and fig.n_nodes > 0 and fig.onnx_mb > 0
    table = capsys.readouterr().out
    assert "| rd4ad |" in table and "onnxruntime / PyTorch" in table
    data = json.loads(out.read_text())
    assert data["models"][0]["ratio"] == pytest.approx(fig.ratio)
    with pytest.raises(InputError, match="exists already"):
        run_export_benchmark(models=["rd4ad"], size=64, json_path=out)
    with pytest.raises(ConfigError):
        run_export_benchmark(models=["acmamba"], size=64)
    with pytest.raises(ConfigError):
        run_export_benchmark(models=["rd4ad"], size=70)
