"""``ssmad data synth mvtec|hsi``: writes what it reports, refuses non-empty folders with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ssmad.cli.data import parse_size
from ssmad.cli.main import main
from ssmad.errors import InputError


def test_synth_mvtec_writes_what_it_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mv"
    args = ["data", "synth", "mvtec", "--out", str(out), "--categories", "wood", "grass", "--image-size", "48"]
    args += ["--n-train", "3", "--n-test-good", "2", "--n-test-defect", "1", "--defects", "hole", "stain"]
    assert main(args) == 0
    text = capsys.readouterr().out
    n_images, n_masks = map(int, re.search(r"wrote (\d+) images and (\d+) masks", text).groups())
    images = [p for p in out.rglob("*.png") if "ground_truth" not in p.parts]
    masks = list(out.rglob("*_mask.png"))
    assert (n_images, n_masks) == (len(images), len(masks)) == (2 * (3 + 2 + 2), 2 * 2)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["grass", "wood"]
    assert sorted(p.name for p in (out / "wood" / "test").iterdir()) == ["good", "hole", "stain"]

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*args, "--seed", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert (out / "wood" / "train" / "good" / "000.png").read_bytes() != before[
        out / "wood" / "train" / "good" / "000.png"
    ]


def test_synth_mvtec_bad_size_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth", "mvtec", "--out", str(tmp_path / "x"), "--image-size", "8"]) == 2
    assert "image_size" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_synth_hsi_writes_mat_scenes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hsi"
    args = ["data", "synth", "hsi", "--out", str(out), "--scenes", "2", "--size", "30x20", "--bands", "9"]
    assert main([*args, "--seed", "4", "--target-fraction", "0.02"]) == 0
    text = capsys.readouterr().out
    files = sorted(p.name for p in out.glob("*.mat"))
    assert files == ["synthetic-000.mat", "synthetic-001.mat"]
    for name in files:
        m = scipy.io.loadmat(out / name)
        assert m["data"].shape == (30, 20, 9) and m["data"].dtype == np.float32
        assert int(m["map"].sum()) == 12  # 2 % of 600 pixels
        assert f"{name}: 30×20×9, 12 anomaly pixels" in text
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err


def test_synth_hsi_mosaic_writes_the_generators_mosaic_scene(tmp_path: Path) -> None:
    from ssmad.data.synthetic.hsi import make_hsi_scene

    out = tmp_path / "mosaic"
    assert main(["data", "synth", "hsi", "--out", str(out), "--size", "40x30", "--bands", "12", "--mosaic"]) == 0
    cube = scipy.io.loadmat(out / "synthetic-000.mat")["data"]
    mosaic, _, _ = make_hsi_scene(40, 30, 12, seed=(0, 0), background="mosaic")
    mixture, _, _ = make_hsi_scene(40, 30, 12, seed=(0, 0))
    np.testing.assert_allclose(cube, mosaic, rtol=1e-6)
    assert not np.allclose(cube, mixture, rtol=1e-3)  # the flag changed the background


@pytest.mark.parametrize("size", ["100by100", "x5", "", "3x3"])
def test_synth_hsi_bad_size_is_exit_2(tmp_path: Path, size: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth", "hsi", "--out", str(tmp_path / "h"), "--size", size, "--bands", "4"]) == 2
    assert "size" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_parse_size() -> None:
    assert parse_size("100x80") == (100, 80)
    assert parse_size(" 64 ") == (64, 64)
    with pytest.raises(InputError):
        parse_size("64x")


def test_bare_data_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth"]) == 2
    assert "mvtec" in capsys.readouterr().out
