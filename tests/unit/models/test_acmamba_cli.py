"""``ssmad predict`` on hyperspectral cubes: outputs, metrics, job lists with failing scenes, shards, exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from sklearn.metrics import roc_auc_score

from ssmad.cli._hsi import add_hsi_arguments, run_hsi_predict
from ssmad.errors import InputError

TINY = ["-o", "iterations=3", "-o", "hidden_dim=8", "-o", "psi=40", "--device", "cpu"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scene(h: int, w: int, b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cube = rng.normal(size=(h, w, b)) * 0.05 + np.linspace(0.2, 0.8, b)
    gt = np.zeros((h, w), np.uint8)
    gt[5:7, 8:10] = 1
    cube[gt > 0] += rng.normal(size=b) * 0.5
    return (cube * 1000).astype(np.int16), gt


def _write_folder(folder: Path) -> None:
    folder.mkdir()
    for i, (h, w, b) in enumerate([(20, 24, 6), (18, 21, 9)]):
        cube, gt = _scene(h, w, b, i)
        scipy.io.savemat(folder / f"scene{i}.mat", {"data": cube, "map": gt})
    bad = np.ones((20, 20, 4))
    bad[3, 3, 1] = np.nan
    np.save(folder / "broken.npy", bad)


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--input", "--out", "--run"):
        parser.add_argument(flag)
    add_hsi_arguments(parser)
    return run_hsi_predict(parser.parse_args(list(argv)))


def test_folder_job_list_survives_a_failing_scene(tmp_path: Path) -> None:
    _write_folder(tmp_path / "in")
    out = tmp_path / "out"
    code = _run("--model", "acmamba", "--input", str(tmp_path / "in"), "--out", str(out), *TINY)
    assert code == 2  # the NaN scene is bad input; the others are done
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"] == ["acmamba", "rx", "lrx"]
    failed = [r for r in summary["scenes"] if r["error"]]
    assert {r["scene"] for r in failed} == {"broken"} and len(failed) == 3 and "NaN" in failed[0]["error"]
    for model, folder in (("acmamba", out), ("rx", out / "rx"), ("lrx", out / "lrx")):
        for i in range(2):
            amap = np.load(folder / f"scene{i}.npy")
            _, gt = _scene(*[(20, 24, 6), (18, 21, 9)][i], i)
            assert amap.shape == gt.shape
            record = json.loads((folder / f"scene{i}.json").read_text())
            assert record["model"] == model and record["seconds"] > 0
            assert record["metrics"]["AUC_DF"] == pytest.approx(roc_auc_score(gt.ravel(), amap.ravel()), abs=1e-9)
            assert (folder / f"scene{i}.png").stat().st_size > 0
    assert summary["mean"]["rx"]["scenes"] == 2
    mean_df = np.mean([r["AUC_DF"] for r in summary["scenes"] if r["model"] == "rx" and not r["error"]])
    assert summary["mean"]["rx"]["AUC_DF"] == pytest.approx(mean_df)


def test_rx_map_written_equals_the_api(tmp_path: Path) -> None:
    import ssmad

    cube, gt = _scene(20, 22, 5, 3)
    np.save(tmp_path / "c.npy", cube)
    np.save(tmp_path / "gt.npy", gt)
    assert _run("--model", "rx", "--input", str(tmp_path / "c.npy"), "--gt", str(tmp_path / "gt.npy"),
                "--out", str(tmp_path / "o")) == 0  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "c.npy"), ssmad.create_model("rx").fit_predict(cube))
    assert json.loads((tmp_path / "o" / "c.json").read_text())["metrics"]["AUC_DF"] > 0.9


def test_existing_outputs_are_kept(tmp_path: Path) -> None:
    cube, _ = _scene(20, 20, 4, 4)
    np.save(tmp_path / "c.npy", cube)
    out = tmp_path / "o"
    out.mkdir()
    (out / "c.npy").write_bytes(b"user data")
    with pytest.raises(InputError, match="exists already"):
        _run("--model", "rx", "--input", str(tmp_path / "c.npy"), "--out", str(out))
    assert (out / "c.npy").read_bytes() == b"user data"
    assert _run("--model", "rx", "--input", str(tmp_path / "c.npy"), "--out", str(out), "--overwrite") == 0
    assert np.load(out / "c.npy").shape == (20, 20)


def test_shards_partition_the_folder_without_changing_results(tmp_path: Path) -> None:
    _write_folder(tmp_path / "in")
    common = ["--model", "rx", "--compare", "none", "--input", str(tmp_path / "in")]
    assert _run(*common, "--out", str(tmp_path / "all")) == 2
    assert _run(*common, "--out", str(tmp_path / "s"), "--shard", "1/2") == 2  # broken.npy, scene1.mat
    assert _run(*common, "--out", str(tmp_path / "s"), "--shard", "2/2") == 0  # scene0.mat
    for i in range(2):
        np.testing.assert_array_equal(
            np.load(tmp_path / "s" / f"scene{i}.npy"), np.load(tmp_path / "all" / f"scene{i}.npy")
        )
    assert (tmp_path / "s" / "summary.shard-1-of-2.json").exists()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--data-key", "cube"], "no variable 'cube'"),
        (["-o", "psi=10000"], "fewer than the 10000 pixels"),
    ],
)
def test_single_scene_errors_are_input_errors(tmp_path: Path, argv: list[str], match: str) -> None:
    cube, gt = _scene(20, 20, 4, 5)
    scipy.io.savemat(tmp_path / "s.mat", {"data": cube, "map": gt})
    with pytest.raises(InputError, match=match):
        _run("--model", "acmamba", "--input", str(tmp_path / "s.mat"), "--out", str(tmp_path / "o"), *TINY, *argv)


def test_gt_of_another_size_is_an_input_error(tmp_path: Path) -> None:
    cube, _ = _scene(20, 20, 4, 6)
    np.save(tmp_path / "c.npy", cube)
    np.save(tmp_path / "gt.npy", np.zeros((20, 21)))
    with pytest.raises(InputError, match="20"):
        _run("--model", "rx", "--input", str(tmp_path / "c.npy"), "--gt", str(tmp_path / "gt.npy"),
             "--out", str(tmp_path / "o"))  # fmt: skip


def test_through_the_command_line_exit_codes(tmp_path: Path) -> None:
    from ssmad.cli.main import main

    cube, gt = _scene(20, 20, 5, 7)
    scipy.io.savemat(tmp_path / "s.mat", {"data": cube, "map": gt})
    scipy.io.savemat(tmp_path / "flat.mat", {"data": cube[..., 0], "map": gt})
    options = ["--device", "cpu", "--model.iterations", "2", "--model.hidden_dim", "8", "--model.psi", "40"]
    ok = main(
        ["predict", "--model", "acmamba", "--input", str(tmp_path / "s.mat"), "--out", str(tmp_path / "o"), *options]
    )
    assert ok == 0
    record = json.loads((tmp_path / "o" / "s.json").read_text())
    assert record["config"]["iterations"] == 2 and record["n_regions"] >= 1
    bad = main(["predict", "--model", "rx", "--input", str(tmp_path / "flat.mat"), "--out", str(tmp_path / "o2")])
    assert bad == 2
    unknown = main(["predict", "--model", "acmamba", "--input", str(tmp_path / "s.mat"), "--out", str(tmp_path / "o3"),
                    "--model.no_such_option", "1"])  # fmt: skip
    assert unknown == 2


def _bad_scenes() -> dict[str, dict[str, np.ndarray]]:
    """One ``.mat`` payload per kind of bad input (ABU keys ``data``/``map`` unless the keys are the fault)."""
    cube, gt = _scene(20, 24, 6, 8)
    nan, inf = cube.astype(np.float64), cube.astype(np.float64)
    nan[2, 3, 1] = np.nan
    inf[4, 5, 0] = -np.inf
    return {
        "nan": {"data": nan, "map": gt},
        "inf": {"data": inf, "map": gt},
        "flat": {"data": cube[..., 0], "map": gt},
        "one_band": {"data": cube[..., :1], "map": gt},
        "gt_size": {"data": cube, "map": np.zeros((20, 23), np.uint8)},
        "fewer_pixels_than_psi": {"data": cube[:6, :6], "map": gt[:6, :6]},  # 36 < psi = 40
        "wrong_keys": {"spectra": cube[..., 0], "labels": gt},  # no 'data' and no 3-D array to fall back on
    }


BAD_MESSAGES = {
    "nan": "NaN",
    "inf": "Inf",
    "flat": "3-D",
    "one_band": "one band",
    "gt_size": "20, 23",
    "fewer_pixels_than_psi": "fewer than the 40 pixels",
    "wrong_keys": "no variable 'data'",
}
MAIN_TINY = ["--device", "cpu", "--model.iterations", "2", "--model.hidden_dim", "8", "--model.psi", "40"]


@pytest.mark.parametrize("kind", sorted(BAD_MESSAGES))
def test_bad_input_exits_2_through_main(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ssmad.cli.main import main

    scipy.io.savemat(tmp_path / f"{kind}.mat", _bad_scenes()[kind])
    out = tmp_path / "o"
    src = tmp_path / f"{kind}.mat"
    code = main(["predict", "--model", "acmamba", "--input", str(src), "--out", str(out), *MAIN_TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert BAD_MESSAGES[kind] in err and f"{kind}.mat" in err
    assert not (out / f"{kind}.npy").exists()


def test_wrong_data_key_exits_2_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ssmad.cli.main import main

    cube, gt = _scene(20, 24, 6, 9)
    scipy.io.savemat(tmp_path / "s.mat", {"data": cube, "map": gt})
    argv = ["predict", "--model", "acmamba", "--input", str(tmp_path / "s.mat"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--data-key", "cube", *MAIN_TINY]) == 2
    assert "no variable 'cube'" in capsys.readouterr().err


def test_folder_of_bad_scenes_keeps_the_good_ones_through_main(tmp_path: Path) -> None:
    """Every kind of bad scene in one job list: each is reported, the two good scenes are scored and summarised."""
    from ssmad.cli.main import main

    folder = tmp_path / "in"
    folder.mkdir()
    for kind, payload in _bad_scenes().items():
        scipy.io.savemat(folder / f"{kind}.mat", payload)
    good = {"a_good": _scene(20, 24, 6, 10), "z_good": _scene(21, 19, 7, 11)}
    for name, (cube, gt) in good.items():
        scipy.io.savemat(folder / f"{name}.mat", {"data": cube, "map": gt})
    out = tmp_path / "o"
    argv = ["predict", "--model", "acmamba", "--compare", "rx", "--input", str(folder), "--out", str(out)]
    code = main([*argv, *MAIN_TINY])
    assert code == 2
    summary = json.loads((out / "summary.json").read_text())
    rows = {(r["scene"], r["model"]): r for r in summary["scenes"]}
    assert len(rows) == 2 * (len(BAD_MESSAGES) + 2)
    for kind, message in BAD_MESSAGES.items():
        assert message in rows[(kind, "acmamba")]["error"]
        if kind == "fewer_pixels_than_psi":  # a limit of ACMamba's regions only: RX scores the small scene
            assert rows[(kind, "rx")]["error"] is None and np.load(out / "rx" / f"{kind}.npy").shape == (6, 6)
        else:
            assert message in rows[(kind, "rx")]["error"]
    for name, (_cube, gt) in good.items():
        assert rows[(name, "acmamba")]["error"] is None and rows[(name, "rx")]["error"] is None
        amap = np.load(out / f"{name}.npy")
        assert amap.shape == gt.shape and np.isfinite(amap).all()
        record = json.loads((out / f"{name}.json").read_text())
        assert record["metrics"]["AUC_DF"] == pytest.approx(roc_auc_score(gt.ravel(), amap.ravel()), abs=1e-9)
    assert summary["mean"]["acmamba"]["scenes"] == 2 and summary["mean"]["rx"]["scenes"] == 3
