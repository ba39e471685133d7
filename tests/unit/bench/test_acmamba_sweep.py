"""``ssmad bench acmamba --sweep``: one row per value, each the mean of direct fits; bad sweeps exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

import ssmad
from ssmad.bench.acmamba import parse_sweep, run_acmamba_sweep, sweep_scenes
from ssmad.cli.main import main
from ssmad.errors import ConfigError
from ssmad.metrics import hsi_metrics

pytest.importorskip("spectral")

TINY = {"iterations": 3, "hidden_dim": 8, "device": "cpu"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_parse_sweep() -> None:
    assert parse_sweep("psi=50,100.5") == ("psi", [50, 100.5])
    assert parse_sweep("rsal-directions=1,2") == ("rsal_directions", [1, 2])
    for bad in ("psi", "psi=", "nonsense=1,2", "psi=1,,2"):
        with pytest.raises(ConfigError):
            parse_sweep(bad)


def test_rows_are_means_of_direct_fits() -> None:
    scenes = sweep_scenes(None, "30x36x10,24x30x8")
    rx, rows = run_acmamba_sweep("psi", [30, 60], scenes, seeds=[0, 1], options=TINY)
    assert [r.value for r in rows] == [30, 60] and len(rows[0].per_fit) == 4
    for row in rows:
        aucs = []
        for seed in (0, 1):
            for _name, cube, gt in scenes:
                det = ssmad.create_model("acmamba", **TINY, psi=row.value, seed=seed).fit(cube)
                aucs.append(hsi_metrics(det.decision_scores_, gt)["AUC_DF"])
        assert row.auc_df == pytest.approx(np.mean(aucs), abs=1e-12)
    rx_direct = [hsi_metrics(ssmad.create_model("rx").fit_predict(c), g)["AUC_DF"] for _n, c, g in scenes]
    assert rx.auc_df == pytest.approx(np.mean(rx_direct))
    assert rows[1].margin_vs_rx == pytest.approx(rows[1].auc_df - rx.auc_df)


def test_command_line_on_a_folder(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i, (_n, cube, gt) in enumerate(sweep_scenes(None, "30x36x10,24x30x8")):
        scipy.io.savemat(folder / f"s{i}.mat", {"data": cube, "map": gt.astype(np.uint8)})
    scipy.io.savemat(folder / "unlabelled.mat", {"data": np.random.default_rng(0).random((20, 20, 4))})
    out = tmp_path / "sweep.json"
    argv = ["bench", "acmamba", "--sweep", "rsal_directions=1,2", "--input", str(folder), "--seeds", "0",
            "-o", "iterations=3", "-o", "hidden_dim=8", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in table[1:]] == ["1", "2", "rx (reference)"]
    data = json.loads(out.read_text())
    assert [r["value"] for r in data["rows"]] == [1, 2] and data["scenes"] == ["s0", "s1"]
    assert main(argv) == 2  # the JSON file exists now: never written over
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--sweep", "bogus=1,2"], "no option 'bogus'"),
        (["--sweep", "psi=50", "-o", "psi=20"], "both set psi"),
        (["--sweep", "rsal_directions=3"], "rsal_directions"),
        (["--sweep", "psi=50", "--seeds", "a"], "--seeds"),
        (["--sweep", "psi=50", "--input", "/nonexistent/folder"], "does not exist"),
    ],
)
def test_bad_sweeps_exit_2(extra: list[str], match: str, capsys) -> None:
    assert main(["bench", "acmamba", *extra, "--scenes", "30x36x10", "-o", "iterations=1"]) == 2
    assert match in capsys.readouterr().err
