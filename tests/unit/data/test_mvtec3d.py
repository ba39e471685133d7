"""MVTec 3D-AD (RGB only) on trees written by the test: records, counts, validation, exit-2 errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssmad.cli.main import main
from ssmad.data.layout import count_kinds, detect_layout, discover, summarize
from ssmad.data.mvtec3d import discover_mvtec3d
from ssmad.data.records import Problems
from ssmad.errors import InputError

from ._trees import make_mvtec3d_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_mvtec3d_tree(tmp_path / "mvtec3d")


def test_records_are_the_rgb_images_with_their_gt_masks(tree: Path) -> None:
    assert detect_layout(tree) == "mvtec3d"
    records = discover(tree)
    assert summarize(records) == {
        "bagel": {"train": 3, "test_normal": 2, "test_anomalous": 2, "masks": 2},
        "foam": {"train": 2, "test_normal": 2, "test_anomalous": 0, "masks": 0},
    }
    assert count_kinds(records) == {
        "bagel": {"train": {"good": 3}, "test": {"good": 2, "crack": 2}},
        "foam": {"train": {"good": 2}, "test": {"good": 2}},
    }
    for r in records:
        assert r.image_path.parent.name == "rgb" and r.image_path.suffix == ".png"  # no depth file, no gt file
        kind = "good" if r.split == "train" else r.defect_type
        assert r.image_path.parent.parent == tree / r.category / r.split / kind
        if r.label:
            assert r.mask_path == r.image_path.parent.parent / "gt" / r.image_path.name
        else:
            assert r.mask_path is None  # the all-black gt of good test images is not used
    assert discover(tree / "bagel") == [r for r in records if r.category == "bagel"]


def test_validation_images_join_training_only_when_asked(tree: Path) -> None:
    plain = discover(tree, split="train")
    extra = set(discover(tree, split="train", train_on_validation=True)) - set(plain)
    assert [r.image_path for r in extra] == [tree / "bagel" / "validation" / "good" / "rgb" / "000.png"]
    assert all(r.split == "train" and r.label == 0 for r in extra)


def test_missing_mask_exits_2_naming_the_expected_file(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mask = tree / "bagel" / "test" / "crack" / "gt" / "001.png"
    mask.unlink()
    with pytest.raises(InputError, match="has no ground-truth mask") as err:
        discover(tree)
    assert str(mask) in str(err.value) and "Fix" in str(err.value)
    assert main(["data", "check", str(tree)]) == 2
    flat = " ".join(capsys.readouterr().err.split())
    assert str(mask) in flat and "1 problem(s)" in flat
    problems = Problems()
    records = discover(tree, problems=problems)
    assert problems.count == 1 and summarize(records)["bagel"]["test_anomalous"] == 1


def test_defect_folder_without_gt_gives_image_labels(tree: Path) -> None:
    for f in (tree / "bagel" / "test" / "crack" / "gt").iterdir():
        f.unlink()
    (tree / "bagel" / "test" / "crack" / "gt").rmdir()
    crack = [r for r in discover(tree) if r.defect_type == "crack"]
    assert len(crack) == 2 and all(r.label == 1 and r.mask_path is None for r in crack)


def test_class_without_training_images_and_empty_root_exit_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for f in (tree / "foam" / "train" / "good" / "rgb").iterdir():
        f.unlink()
    with pytest.raises(InputError, match="'foam' has no training images") as err:
        discover_mvtec3d(tree)
    assert str(tree / "foam" / "train" / "good" / "rgb") in str(err.value)
    assert main(["data", "check", str(tree), "--layout", "mvtec3d"]) == 2
    assert "'foam' has no training images" in capsys.readouterr().err
    with pytest.raises(InputError, match="no MVTec 3D-AD class folder"):
        discover_mvtec3d(tree / "bagel" / "calibration")
