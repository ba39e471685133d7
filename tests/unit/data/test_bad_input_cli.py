"""Bad input through the command line: one message naming the file and the fix, exit code 2, no traceback.

Image data sets are read by ``ssmad train`` (which fails at discovery, before any model is built) and by
``ssmad data check``; cubes by ``ssmad predict --model rx`` and ``ssmad data check``. Grayscale, RGBA and 16-bit
images are accepted and converted, not rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from ssmad.cli.main import main

from ._trees import make_category_tree, write_mask

Case = Callable[[Path], tuple[Path, list[Path]]]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_clear_error(rc: int, err: str, paths: list[Path]) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    flat = " ".join(err.split())  # rich may wrap long log lines; the final error line is printed unwrapped
    for p in paths:
        assert str(p) in flat, (p, err)
    assert "Fix" in flat, err


# ------------------------------------------------------------------------------------------------ image data sets
def _missing_root(tmp: Path) -> tuple[Path, list[Path]]:
    return tmp / "no_such_dataset", [tmp / "no_such_dataset"]


def _empty_category(tmp: Path) -> tuple[Path, list[Path]]:
    root = tmp / "ds"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 1})
    (root / "cable" / "train" / "good").mkdir(parents=True)
    return root, [root / "cable" / "train" / "good"]


def _defect_without_mask(tmp: Path) -> tuple[Path, list[Path]]:
    root = tmp / "ds"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 2})
    mask = root / "bottle" / "ground_truth" / "crack" / "001_mask.png"
    mask.unlink()
    return root, [root / "bottle" / "test" / "crack" / "001.png", mask]


def _mask_of_another_size(tmp: Path) -> tuple[Path, list[Path]]:
    root = tmp / "ds"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 1})
    mask = write_mask(root / "bottle" / "ground_truth" / "crack" / "000_mask.png", size=(12, 10))
    return root, [mask, root / "bottle" / "test" / "crack" / "000.png"]


def _unreadable_image(tmp: Path) -> tuple[Path, list[Path]]:
    root = tmp / "ds"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 1})
    bad = root / "bottle" / "train" / "good" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature, then garbage
    return root, [bad]


def _non_image_with_image_name(tmp: Path) -> tuple[Path, list[Path]]:
    root = tmp / "ds"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 1})
    bad = root / "bottle" / "test" / "good" / "report.jpg"
    bad.write_text("this is a text file with an image suffix")
    return root, [bad]


IMAGE_CASES: dict[str, Case] = {
    "missing_root": _missing_root,
    "empty_category": _empty_category,
    "defect_without_mask": _defect_without_mask,
    "mask_of_another_size": _mask_of_another_size,
    "unreadable_image": _unreadable_image,
    "non_image_with_image_name": _non_image_with_image_name,
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_train_fails_at_discovery_with_exit_2(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    root, paths = IMAGE_CASES[case](tmp_path)
    results = tmp_path / "results"
    argv = ["train", "--model", "mambaad", "--data.root", str(root), "--output.root", str(results)]
    rc, _, err = _run(argv, capsys)
    _assert_clear_error(rc, err, paths)
    assert not results.exists()  # nothing was started


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_data_check_reports_image_problems_with_exit_2(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, paths = IMAGE_CASES[case](tmp_path)
    rc, _, err = _run(["data", "check", str(root)], capsys)
    _assert_clear_error(rc, err, paths)


def test_data_check_catches_a_truncated_image_that_headers_alone_miss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ds"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 1}, size=(64, 48))
    bad = root / "bottle" / "train" / "good" / "000.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    rc, _, err = _run(["data", "check", str(root)], capsys)
    _assert_clear_error(rc, err, [bad])


def test_grayscale_rgba_and_16bit_images_are_accepted_and_converted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ds"
    make_category_tree(root, "bottle", n_train=1, n_test_good=0, defects={"crack": 1})
    good = root / "bottle" / "train" / "good"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), "L").save(good / "gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 24, 4), dtype=np.uint8), "RGBA").save(good / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (20, 24), dtype=np.uint16)).save(good / "deep.png")
    # a 16-bit defect image with an 8-bit mask of the same size
    deep_test = root / "bottle" / "test" / "crack" / "000.png"
    Image.fromarray(rng.integers(0, 65536, (20, 24), dtype=np.uint16)).save(deep_test)
    rc, out, err = _run(["data", "check", str(root)], capsys)
    assert rc == 0, err
    assert "bottle: train 4, test_normal 0, test_anomalous 1, masks 1" in out
    converted = out.split("converted to 8-bit RGB when loaded:")[1]
    counts = {m: int(n) for n, m in (part.split() for part in converted.strip().split(", "))}
    with Image.open(deep_test) as img:
        deep_mode = img.mode  # Pillow reads 16-bit PNGs as I;16 or I depending on the version
    assert counts == {"L": 1, "RGBA": 1, deep_mode: 2}


def test_data_check_plain_folder_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_category_tree(tmp_path, "x", n_train=3, n_test_good=0, defects={})
    (tmp_path / "bad").mkdir()
    argv = ["data", "check", str(tmp_path), "--normal-dir", "x/train/good", "--abnormal-dirs", "bad"]
    rc, _, err = _run(argv, capsys)
    _assert_clear_error(rc, err, [tmp_path / "bad"])


# ------------------------------------------------------------------------------------------------------- cubes
def _mat(path: Path, **arrays: np.ndarray) -> Path:
    scipy.io.savemat(path, arrays)
    return path


def _cube(rng: np.random.Generator, bands: int = 6) -> np.ndarray:
    return rng.random((10, 9, bands))


def _with(value: float) -> Callable[[Path], tuple[Path, list[str], list[str]]]:
    def make(tmp: Path) -> tuple[Path, list[str], list[str]]:
        cube = _cube(np.random.default_rng(1))
        cube[4, 2, 3] = value
        return _mat(tmp / "scene.mat", data=cube, map=np.zeros((10, 9))), [], ["row 4, column 2, band 3"]

    return make


def _two_cubes_no_default_key(tmp: Path) -> tuple[Path, list[str], list[str]]:
    rng = np.random.default_rng(2)
    path = _mat(tmp / "scene.mat", img_a=_cube(rng), img_b=_cube(rng, 4), gtruth=np.zeros((10, 9)))
    return path, [], ["img_a 10×9×6", "img_b 10×9×4", "gtruth 10×9", "--data-key"]


def _named_key_absent(tmp: Path) -> tuple[Path, list[str], list[str]]:
    path = _mat(tmp / "scene.mat", cube=_cube(np.random.default_rng(3)), truth=np.zeros((10, 9)))
    return path, ["--data-key", "radiance"], ["'radiance'", "cube 10×9×6", "truth 10×9", "--data-key"]


def _one_band(tmp: Path) -> tuple[Path, list[str], list[str]]:
    return _mat(tmp / "scene.mat", data=_cube(np.random.default_rng(4), 1)), [], ["one band"]


def _two_dimensions(tmp: Path) -> tuple[Path, list[str], list[str]]:
    np.save(tmp / "scene.npy", np.random.default_rng(5).random((10, 9)))
    return tmp / "scene.npy", [], ["(10, 9)", "3-D"]


CUBE_CASES: dict[str, Callable[[Path], tuple[Path, list[str], list[str]]]] = {
    "nan": _with(float("nan")),
    "inf": _with(float("inf")),
    "mat_without_the_key": _two_cubes_no_default_key,
    "mat_without_the_named_key": _named_key_absent,
    "one_band": _one_band,
    "two_dimensions": _two_dimensions,
}


# `ssmad predict` does not register --data-key (cli/predict.py never calls cli/_hsi.add_hsi_arguments), so a named
# key is exercised through `ssmad data check` only.
_PAIRS = [
    (c, cmd) for c in CUBE_CASES for cmd in ("predict", "check") if (c, cmd) != ("mat_without_the_named_key", "predict")
]


@pytest.mark.parametrize(("case", "command"), _PAIRS)
def test_bad_cubes_exit_2_naming_the_file(
    tmp_path: Path, case: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, extra, phrases = CUBE_CASES[case](tmp_path)
    if command == "predict":
        argv = ["predict", "--model", "rx", "--input", str(path), "--out", str(tmp_path / "out"), *extra]
    else:
        argv = ["data", "check", str(path), *extra]
    rc, _, err = _run(argv, capsys)
    _assert_clear_error(rc, err, [path])
    flat = " ".join(err.split())
    for phrase in phrases:
        assert phrase in flat, (phrase, err)
    if case in ("nan", "inf"):
        assert ("1 NaN and 0 Inf" if case == "nan" else "0 NaN and 1 Inf") in flat


def test_data_check_reports_a_good_cube(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cube = np.random.default_rng(6).integers(0, 4000, (10, 9, 6)).astype(np.int16)
    gt = np.zeros((10, 9), np.uint8)
    gt[2:4, 5] = 1
    path = _mat(tmp_path / "scene.mat", data=cube, map=gt)
    rc, out, err = _run(["data", "check", str(path)], capsys)
    assert rc == 0, err
    assert "10×9 pixels × 6 bands" in out and "2 anomaly pixels" in out
    assert f"max {cube.max():.4g}" in out


def test_data_check_refuses_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    rc, _, err = _run(["data", "check", str(path)], capsys)
    _assert_clear_error(rc, err, [path])
