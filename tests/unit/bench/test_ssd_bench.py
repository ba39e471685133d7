"""SSD benchmark: the bound against a hand count, the peer poses the same problem, ratios and JSON of a tiny run."""

from __future__ import annotations

import json

import pytest
import torch
from einops import rearrange

import ssmad.bench.ssd as bench
from ssmad.bench.scan import MachineLimits
from ssmad.cli.main import main
from ssmad.errors import InputError
from ssmad.ssm import selective_scan_ref, ssd_cpu, ssd_scan_ref

TINY = bench.SSDShape("tiny", 2, 24, 4, 3, 4, 2, "test shape")
LIMITS = MachineLimits(bandwidth=1e9, flops=1e9, exp_rate=1e6, threads=1)


def test_forward_bound_is_the_hand_count() -> None:
    b, L, H, P, N, G = 2, 24, 4, 3, 4, 2
    bytes_moved = 4 * (b * L * H * P * 2 + b * L * G * N * 2 + b * L * H)  # x, y, B, C, dt
    expected = max(bytes_moved / 1e9, 5 * b * L * H * P * N / 1e9, 2 * b * L * H / 1e6)
    assert bench.forward_bound(LIMITS, TINY) == pytest.approx(expected)
    fast_exp = MachineLimits(bandwidth=1e9, flops=1e12, exp_rate=1e12, threads=1)
    assert bench.forward_bound(fast_exp, TINY) == pytest.approx(bytes_moved / 1e9)


def test_peer_inputs_pose_the_same_problem() -> None:
    inputs = {k: v.double() for k, v in bench.make_inputs(TINY).items()}
    y = ssd_scan_ref(
        inputs["x"], inputs["dt"], inputs["A"], inputs["B"], inputs["C"], D=inputs["D"],
        dt_bias=inputs["dt_bias"], dt_softplus=True,
    )  # fmt: skip
    peer = bench.peer_inputs(inputs)
    y_peer = selective_scan_ref(**peer, delta_softplus=True)
    torch.testing.assert_close(rearrange(y_peer, "b (h p) l -> b l h p", h=TINY.heads), y, rtol=1e-12, atol=1e-12)


@pytest.fixture
def tiny_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "SHAPES", (TINY,))
    monkeypatch.setattr(bench, "measure_machine", lambda repeats=1: LIMITS)


def test_tiny_run_rows_ratios_and_json(tiny_bench: None, tmp_path, capsys) -> None:
    out = tmp_path / "ssd.json"
    rows = bench.run_ssd_benchmark(chunk_sizes=(4,), repeats=1, threads=1, json_path=out)
    methods = [r.method for r in rows]
    # the compiled backend, plain and with the trapezoid rule, where it builds
    kernel = ["ssd_scan (cpu kernel)", "ssd_scan + trapezoid (cpu kernel)"] if ssd_cpu.is_available() else []
    assert methods == [
        "reference",
        "ssd_scan (torch, Q=4)",
        "ssd_scan + trapezoid (Q=4)",
        *kernel,
        "selective_scan (peer)",
        "roofline bound",
    ]
    peer_row = rows[methods.index("selective_scan (peer)")]
    bound = bench.forward_bound(LIMITS, TINY)
    for r in rows[:-1]:
        assert r.ratios["forward_over_bound"] == pytest.approx(r.forward / bound)
        assert r.ratios["fwd_bwd_over_bound"] == pytest.approx(r.fwd_bwd / (2.5 * bound))
        assert r.ratios["fwd_bwd_speedup_vs_peer"] == pytest.approx(peer_row.fwd_bwd / r.fwd_bwd)
    payload = json.loads(out.read_text())
    assert [r["method"] for r in payload["rows"]] == methods
    assert payload["machine"]["tiny"]["bandwidth"] == 1e9
    assert "| tiny | ssd_scan (torch, Q=4) |" in capsys.readouterr().out
    with pytest.raises(InputError, match="exists already"):
        bench.run_ssd_benchmark(chunk_sizes=(4,), repeats=1, json_path=out)
    assert json.loads(out.read_text()) == payload  # the earlier results are kept


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shapes": ["nope"]}, "unknown shape"), ({"chunk_sizes": (0,)}, "chunk-size"), ({"threads": 0}, "threads")],
)
def test_bad_settings(tiny_bench: None, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        bench.run_ssd_benchmark(**kwargs)


def test_cli_rejects_a_bad_chunk_list(capsys) -> None:
    assert main(["bench", "ssd", "--chunk-size", "16,x"]) == 2
    assert "--chunk-size" in capsys.readouterr().err
