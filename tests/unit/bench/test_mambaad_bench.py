"""MambaAD benchmark: FLOP accounting of the selective scans and of the counted layers against hand counts, the
efficiency ratio, the recorder's clean-up, bad settings and (slow) one tiny end-to-end run."""

from __future__ import annotations

import json
import math

import pytest
import torch

import ssmad.layers.directional as layer_core  # where the layers call selective_scan
import ssmad.ssm as ssm_package
from ssmad.bench.mambaad import count_flops, efficiency_ratio, record_scans, run_mambaad_benchmark
from ssmad.cli.main import main
from ssmad.errors import ConfigError, InputError
from ssmad.layers import SS2D
from ssmad.models.mambaad import MambaAD, MambaADConfig
from ssmad.ssm import ssd_cpu


def test_scan_flops_of_a_tiny_mambaad_equal_the_hand_count_from_its_config() -> None:
    depths, n, k, size, batch = (3, 2, 2, 3), 4, 2, 64, 2
    cfg = MambaADConfig(
        encoder="resnet18",
        pretrained=False,
        image_size=size,
        decoder_depths=depths,
        d_state=n,
        num_directions=k,
        bottleneck_dim=64,
    )
    net = MambaAD(cfg).eval()
    # resnet18 features (64, 128, 256) -> decoder widths (bottleneck 64, 256, 128, 64) at strides 32, 16, 8, 4
    widths, strides = (64, 256, 128, 64), (32, 16, 8, 4)
    expected_calls = []
    for depth, width, stride in zip(depths, widths, strides, strict=True):
        d_inner, side = 2 * width, size // stride
        expected_calls += [(batch, k * d_inner, side * side, n)] * depth
    expected = sum(9 * b * d * length * state for b, d, length, state in expected_calls)

    images = torch.randn(batch, 3, size, size)
    with record_scans(run=False) as calls, torch.no_grad():
        net(images)
    assert [(c.batch, c.dim, c.length, c.dstate) for c in calls] == expected_calls
    flops = count_flops(lambda: net(images))
    assert flops.scans == expected
    assert flops.scan_calls == sum(depths)
    assert flops.total == flops.counted + expected


def test_counted_flops_of_one_ss2d_equal_its_matmuls_and_convolution() -> None:
    b, h, w, c, n, k = 2, 4, 6, 16, 4, 8
    m = SS2D(c, d_state=n, num_directions=k, scan_backend="reference").eval()
    d, r, length = 2 * c, math.ceil(c / 16), h * w
    flops = count_flops(lambda: m(torch.randn(b, h, w, c)))
    per_position = (
        c * 2 * d  # in_proj
        + 9 * d  # depthwise 3x3 convolution
        + k * d * (r + 2 * n)  # x_proj, per direction
        + k * r * d  # dt_proj, per direction
        + d * c  # out_proj
    )
    expected = 2 * b * length * per_position  # 2 FLOPs per multiply-add
    assert flops.counted == expected
    assert flops.scans == 9 * b * (k * d) * length * n
    assert flops.scan_calls == 1


def test_recorder_runs_the_real_scan_and_restores_the_function() -> None:
    original = ssm_package.selective_scan
    m = SS2D(8, d_state=4, num_directions=4, scan_backend="reference").eval()
    x = torch.randn(1, 3, 5, 8)
    with torch.no_grad():
        plain = m(x)
        with record_scans() as calls:
            assert layer_core.selective_scan is not original
            recorded = m(x)
        with record_scans(run=False):
            stand_in = m(x)
    assert layer_core.selective_scan is original and ssm_package.selective_scan is original
    assert len(calls) == 1 and (calls[0].dim, calls[0].length) == (4 * 16, 15)
    torch.testing.assert_close(recorded, plain, rtol=0, atol=0)
    assert not torch.allclose(stand_in, plain)  # zeros instead of the scan change the output


def test_efficiency_ratio_hand_cases() -> None:
    assert efficiency_ratio(6.0, 2.0, 3e9, 1e9) == pytest.approx(1.0)
    assert efficiency_ratio(10.0, 2.0, 2e9, 1e9) == pytest.approx(2.5)
    assert efficiency_ratio(1.0, 1.0, 4.0, 1.0) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kwargs",
    [dict(size=100), dict(size=32), dict(batch=0), dict(repeats=0), dict(train_repeats=-1), dict(models=["x"])],
)
def test_bad_settings_raise_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        run_mambaad_benchmark(**kwargs)


def test_existing_json_is_never_overwritten(tmp_path) -> None:
    target = tmp_path / "old.json"
    target.write_text("{}")
    with pytest.raises(InputError, match="exists"):
        run_mambaad_benchmark(json_path=target)
    assert target.read_text() == "{}"
    assert main(["bench", "mambaad", "--size", "100"]) == 2


@pytest.mark.slow
def test_tiny_end_to_end_run_writes_a_consistent_report(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    report = run_mambaad_benchmark(batch=1, size=64, encoder="resnet18", repeats=1, train_repeats=1, json_path=out)
    printed = capsys.readouterr().out
    assert "efficiency ratio" in printed and "| mambaad |" in printed and "| rd4ad |" in printed
    data = json.loads(out.read_text())
    by_name = {m.name: m for m in report.models}
    assert set(by_name) == {"mambaad", "mambaadv2", "rd4ad"}
    assert by_name["rd4ad"].flops.scans == 0 and by_name["mambaad"].flops.scan_calls == 16
    assert by_name["mambaadv2"].flops.scan_calls == 16 and by_name["mambaadv2"].flops.scans > 0  # SSD scans counted
    for name, m in by_name.items():
        assert m.infer_s > 0 and m.train_s is not None and m.train_s > 0
        ratio = (m.infer_s / report.encoder_s) / (m.flops.total / report.encoder_flops.total)
        assert data["efficiency_ratio"][name] == pytest.approx(ratio)
        assert m.flops.total > report.encoder_flops.total  # encoder + decoder


@pytest.mark.skipif(not ssm_package.backend_available("cpu"), reason="no C++ compiler: no fused inference path")
def test_recorder_sees_the_scans_of_the_fused_inference_path_and_restores_it() -> None:
    m = SS2D(8, d_state=4, num_directions=4, scan_backend="cpu").eval()
    x = torch.randn(1, 3, 5, 8)
    with torch.no_grad():
        assert m.use_fused(x)
        fused = m(x)
        with record_scans() as calls:
            assert not m.use_fused(x)  # the composition runs, one selective_scan call per layer
            recorded = m(x)
        assert m.use_fused(x)
    assert len(calls) == 1 and (calls[0].dim, calls[0].length) == (4 * 16, 15)
    torch.testing.assert_close(recorded, fused, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not ssd_cpu.is_available(), reason="no C++ compiler: no fused SSD inference path")
def test_recorder_sees_the_ssd_scans_of_mambaadv2s_fused_path_and_restores_it(monkeypatch) -> None:
    from ssmad.layers import hss2

    m = hss2.SSD2D(8, d_state=4, headdim=4, num_directions=4).eval()
    x = torch.randn(1, 3, 5, 8)
    fused_calls = []
    real = ssd_cpu.ssd_scan_cpu_directional
    monkeypatch.setattr(ssd_cpu, "ssd_scan_cpu_directional", lambda *a, **kw: fused_calls.append(1) or real(*a, **kw))
    with torch.no_grad():
        fused = m(x)
        with record_scans() as calls:
            recorded = m(x)  # the composition runs: one ssd_scan call for the K directions
        again = m(x)
    assert fused_calls == [1, 1]  # the fused path ran before and after recording, not during
    assert len(calls) == 1 and (calls[0].dim, calls[0].length, calls[0].batch) == (16, 15, 4)
    torch.testing.assert_close(recorded, fused, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(again, fused, rtol=0, atol=0)


def test_training_ratios_are_paired_by_round_and_printed_with_the_encoder_alone() -> None:
    from ssmad.bench.mambaad import BenchReport, FlopCount, ModelFigures, format_report
    from ssmad.bench.scan import MachineLimits

    def figures(name: str, train: list[float]) -> ModelFigures:
        return ModelFigures(name, 1.0, 1.0, FlopCount(10), 1.0, min(train), [1.0], train, [1.0])

    mambaad, rd4ad = figures("mambaad", [6.0, 9.0]), figures("rd4ad", [3.0, 2.0])
    report = BenchReport(
        8, 256, "resnet34", 2, "cpu", MachineLimits(1.0, 1.0, 1.0, 2), (0, 0, 0), (0, 0, 0), FlopCount(5), 0.5,
        [0.5], [mambaad, rd4ad], encoder_train_times=[0.5, 0.4],
    )  # fmt: skip
    assert report.train_ratio(mambaad) == (6.0 / 2.0, [6.0 / 3.0, 9.0 / 2.0])
    assert BenchReport(**{**report.__dict__, "models": [mambaad]}).train_ratio(mambaad) is None
    text = format_report(report)
    assert "encoder alone (frozen, no autograd) 0.400 s" in text
    assert "training step mambaad: 6.000 s = 15.00× the encoder alone" in text and "3.00× rd4ad's" in text
    assert "(paired rounds [2.00, 4.50])" in text


def test_ssd_scan_flops_of_a_tiny_mambaadv2_equal_the_hand_count_from_its_plan() -> None:
    from ssmad.models.mambaadv2 import MambaADv2, MambaADv2Config

    depths, n, size, batch, plan = (2, 2, 2, 2), 4, 64, 2, (8, 4, 2, 1)
    cfg = MambaADv2Config(
        encoder="resnet18",
        pretrained=False,
        image_size=size,
        decoder_depths=depths,
        d_state=n,
        headdim=8,
        bottleneck_dim=64,
        scan_backend="ssd",
    )
    net = MambaADv2(cfg).eval()
    net.decoder.scan_plan.copy_(torch.tensor(plan))
    widths, strides = (64, 256, 128, 64), (32, 16, 8, 4)
    expected_calls = []
    for depth, width, stride, k in zip(depths, widths, strides, plan, strict=True):
        side = size // stride
        # the K directions are folded into the batch of one SSD call: x is (batch · K, L, heads, headdim)
        expected_calls += [(batch * k, 2 * width, side * side, n)] * depth
    images = torch.randn(batch, 3, size, size)
    with record_scans(run=False) as calls, torch.no_grad():
        net(images)
    assert [(c.batch, c.dim, c.length, c.dstate) for c in calls] == expected_calls
    flops = count_flops(lambda: net(images))
    assert flops.scans == sum(9 * b * d * length * state for b, d, length, state in expected_calls)
    # the same counts whichever kernel runs the recurrence (the CPU path goes through selective_scan)
    net_cpu = MambaADv2(MambaADv2Config(**{**cfg.to_dict(), "scan_backend": "selective"})).eval()
    net_cpu.decoder.scan_plan.copy_(torch.tensor(plan))
    with record_scans(run=False) as calls_cpu, torch.no_grad():
        net_cpu(images)
    assert [(c.batch, c.dim, c.length, c.dstate) for c in calls_cpu] == expected_calls


def test_rounds_warm_up_on_the_asked_images_and_time_only_full_batches() -> None:
    from ssmad.bench.mambaad import _timed_rounds

    seen: dict[str, list[int]] = {"a": [], "b": []}
    fns = [(name, lambda t, name=name: seen[name].append(len(t))) for name in seen]
    images = torch.zeros(4, 3, 8, 8)
    times = _timed_rounds(fns, images, repeats=2)
    assert seen == {"a": [1, 4, 4], "b": [1, 4, 4]} and [len(v) for v in times.values()] == [2, 2]
    seen = {"a": [], "b": []}
    _timed_rounds(fns, images, repeats=1, warmup_images=4)  # training: the warm-up step is a full batch
    assert seen == {"a": [4, 4], "b": [4, 4]}
