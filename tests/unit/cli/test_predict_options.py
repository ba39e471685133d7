"""The real ``ssmad predict`` parser carries the hyperspectral options (not only a bare test parser)."""

from pathlib import Path

import numpy as np
import scipy.io

from ssmad.cli.main import main


def _scene(h: int = 12, w: int = 10, bands: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(h, w, bands))
    gt = np.zeros((h, w), dtype=np.uint8)
    gt[3, 4] = 1
    cube[3, 4] += 8.0
    return cube, gt


def test_named_keys_reach_the_loader(tmp_path: Path) -> None:
    cube, gt = _scene()
    scipy.io.savemat(tmp_path / "s.mat", {"cube": cube, "truth": gt})
    out = tmp_path / "o"
    args = ["predict", "--model", "rx", "--input", str(tmp_path / "s.mat"), "--out", str(out)]
    code = main([*args, "--data-key", "cube", "--gt-key", "truth", "--compare", "none"])
    assert code == 0
    score = np.load(out / "s.npy")
    assert score.shape == gt.shape
    assert np.unravel_index(np.argmax(score), score.shape) == (3, 4)


def test_wrong_key_is_exit_2_naming_the_keys(tmp_path: Path, capsys) -> None:
    cube, gt = _scene()
    scipy.io.savemat(tmp_path / "s.mat", {"cube": cube, "truth": gt})
    args = ["predict", "--model", "rx", "--input", str(tmp_path / "s.mat"), "--out", str(tmp_path / "o")]
    code = main([*args, "--data-key", "hsi", "--compare", "none"])
    assert code == 2
    err = capsys.readouterr().err
    assert "s.mat" in err and "cube" in err
