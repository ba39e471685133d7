"""Layout discovery on trees written by the test: MVTec AD, VisA 1cls (tree and raw csv), plain folders."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssmad.data.layout import (
    ImageRecord,
    discover,
    discover_folder,
    discover_mvtec,
    discover_visa,
    list_images,
    select,
    sort_records,
    summarize,
)
from ssmad.errors import ConfigError, InputError

from ._trees import make_category_tree, write_image, write_mask


@pytest.fixture
def mvtec(tmp_path: Path) -> Path:
    root = tmp_path / "MVTecAD"
    make_category_tree(root, "bottle", n_train=3, n_test_good=2, defects={"broken_large": 2, "contamination": 1})
    make_category_tree(root, "grid", n_train=4, n_test_good=1, defects={"bent": 2})
    (root / "license.txt").write_text("not a category")
    return root


def test_mvtec_two_categories_one_index(mvtec: Path) -> None:
    records = discover(mvtec)
    assert [r.category for r in records] == ["bottle"] * 8 + ["grid"] * 7
    by_cat = summarize(records)
    assert by_cat == {
        "bottle": {"train": 3, "test_normal": 2, "test_anomalous": 3, "masks": 3},
        "grid": {"train": 4, "test_normal": 1, "test_anomalous": 2, "masks": 2},
    }
    for r in records:
        assert r.label == int(r.defect_type != "good")
        if r.label:
            # the mask is the MVTec AD name derived from the image, under ground_truth/<defect>/
            expected = mvtec / r.category / "ground_truth" / r.defect_type / f"{r.image_path.stem}_mask.png"
            assert r.mask_path == expected
            assert r.image_path.parent == mvtec / r.category / "test" / r.defect_type
        else:
            assert r.mask_path is None
            assert r.image_path.parent == mvtec / r.category / r.split / "good"
    # train before test inside each category
    bottle = [r.split for r in records if r.category == "bottle"]
    assert bottle == ["train"] * 3 + ["test"] * 5


def test_sorting_is_deterministic_and_independent_of_input_order(mvtec: Path) -> None:
    records = discover(mvtec)
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert sort_records(shuffled) == records
    assert discover(mvtec) == records


def test_single_category_folder_and_filters(mvtec: Path) -> None:
    single = discover(mvtec / "grid")
    assert {r.category for r in single} == {"grid"}
    assert len(single) == 7
    assert discover(mvtec, categories="grid") == single
    train = discover(mvtec, split="train")
    assert {r.split for r in train} == {"train"} and len(train) == 7
    assert select(discover(mvtec), split="test", category="bottle") == discover(
        mvtec, split="test", categories=["bottle"]
    )


def test_unknown_category_lists_the_present_ones(mvtec: Path) -> None:
    with pytest.raises(InputError, match="present: bottle, grid"):
        discover(mvtec, categories=["bottel"])


def test_record_dict_round_trip(mvtec: Path) -> None:
    for r in discover(mvtec):
        assert ImageRecord.from_dict(r.to_dict()) == r


def test_visa_1cls_tree(tmp_path: Path) -> None:
    root = tmp_path / "VisA_pytorch" / "1cls"
    make_category_tree(root, "candle", n_train=3, n_test_good=2, defects={"bad": 2}, naming="visa", ext=".JPG")
    make_category_tree(root, "pcb1", n_train=2, n_test_good=1, defects={"bad": 1}, naming="visa", ext=".JPG")
    for records in (discover(root), discover_visa(root), discover(root.parent)):  # parent: descends into 1cls
        assert summarize(records) == {
            "candle": {"train": 3, "test_normal": 2, "test_anomalous": 2, "masks": 2},
            "pcb1": {"train": 2, "test_normal": 1, "test_anomalous": 1, "masks": 1},
        }
        for r in records:
            if r.label:
                assert r.defect_type == "bad"
                assert r.mask_path == root / r.category / "ground_truth" / "bad" / f"{r.image_path.stem}.png"
    # the strict MVTec naming does not accept VisA masks, and says which name it expected
    with pytest.raises(InputError) as err:
        discover(root, layout="mvtec")
    assert "000_mask.png" in str(err.value) and "Fix" in str(err.value)


def _write_raw_visa(root: Path) -> None:
    rows = [("object", "split", "label", "image", "mask")]
    for cat in ("candle", "cashew"):
        for i in range(3):
            rel = f"{cat}/Data/Images/Normal/{i:04d}.JPG"
            write_image(root / rel, seed=i)
            rows.append((cat, "train" if i < 2 else "test", "normal", rel, ""))
        for i in range(2):
            rel = f"{cat}/Data/Images/Anomaly/{i:03d}.JPG"
            mrel = f"{cat}/Data/Masks/Anomaly/{i:03d}.png"
            write_image(root / rel, seed=10 + i)
            write_mask(root / mrel, value=i + 1)  # VisA masks hold small instance ids, not 255
            rows.append((cat, "test", "anomaly", rel, mrel))
    (root / "split_csv").mkdir(parents=True)
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_raw_visa_with_split_csv(tmp_path: Path) -> None:
    root = tmp_path / "visa"
    _write_raw_visa(root)
    records = discover(root)
    assert summarize(records) == {
        "candle": {"train": 2, "test_normal": 1, "test_anomalous": 2, "masks": 2},
        "cashew": {"train": 2, "test_normal": 1, "test_anomalous": 2, "masks": 2},
    }
    anomalous = [r for r in records if r.label]
    assert all(r.mask_path == root / r.category / "Data/Masks/Anomaly" / f"{r.image_path.stem}.png" for r in anomalous)
    assert discover(root, categories="cashew") == [r for r in records if r.category == "cashew"]


def test_raw_visa_missing_mask_file_names_the_csv_line(tmp_path: Path) -> None:
    root = tmp_path / "visa"
    _write_raw_visa(root)
    missing = root / "cashew/Data/Masks/Anomaly/001.png"
    missing.unlink()
    with pytest.raises(InputError) as err:
        discover(root)
    assert str(missing) in str(err.value) and "1cls.csv, line" in str(err.value)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00",  # found by benchmarks/fuzz_inputs.py: UnicodeDecodeError escaped
        b"object,split,label,image,mask\n" + b"x" * (csv.field_size_limit() + 1) + b"\n",  # csv.Error
    ],
    ids=["not-utf8", "field-too-large"],
)
def test_raw_visa_unreadable_split_file_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "visa"
    _write_raw_visa(root)
    (root / "split_csv" / "1cls.csv").write_bytes(content)
    with pytest.raises(InputError, match=r"1cls\.csv: (UnicodeDecodeError|Error).*Fix"):
        discover(root)


def test_plain_folders_with_shared_mask_folder(tmp_path: Path) -> None:
    root = tmp_path / "parts"
    for i in range(5):
        write_image(root / "ok" / f"n{i}.png", seed=i)
    for d in ("scratch", "dent"):
        for i in range(2):
            write_image(root / d / f"{d}{i}.bmp", seed=20 + i)
    # masks: one folder per defect type inside one mask root, two naming styles
    write_mask(root / "masks" / "scratch" / "scratch0.png")
    write_mask(root / "masks" / "scratch" / "scratch1_mask.png")
    write_mask(root / "masks" / "dent" / "dent0.png")
    write_mask(root / "masks" / "dent" / "dent1.png")
    records = discover(root, layout="folder", normal_dir="ok", abnormal_dirs=["scratch", "dent"], mask_dirs="masks")
    assert summarize(records) == {"parts": {"train": 5, "test_normal": 0, "test_anomalous": 4, "masks": 4}}
    masks = {r.image_path.name: r.mask_path.name for r in records if r.mask_path is not None}
    assert masks == {
        "scratch0.bmp": "scratch0.png",
        "scratch1.bmp": "scratch1_mask.png",
        "dent0.bmp": "dent0.png",
        "dent1.bmp": "dent1.png",
    }
    assert {r.defect_type for r in records if r.label} == {"scratch", "dent"}


def test_plain_folders_without_masks_and_with_held_out_normals(tmp_path: Path) -> None:
    for i in range(10):
        write_image(tmp_path / "good" / f"{i}.png", seed=i)
    write_image(tmp_path / "bad" / "x.png")
    records = discover_folder(tmp_path / "good", tmp_path / "bad", normal_test_ratio=0.3, category="widget", seed=1)
    counts = summarize(records)["widget"]
    assert counts == {"train": 7, "test_normal": 3, "test_anomalous": 1, "masks": 0}
    train = {r.image_path for r in records if r.split == "train"}
    held = {r.image_path for r in records if r.split == "test" and r.label == 0}
    assert not train & held and len(train | held) == 10
    # the same seed gives the same choice, another seed (almost surely) another
    again = discover_folder(tmp_path / "good", tmp_path / "bad", normal_test_ratio=0.3, category="widget", seed=1)
    assert again == records


def test_plain_folder_mask_missing_names_expected_file(tmp_path: Path) -> None:
    write_image(tmp_path / "good" / "a.png")
    write_image(tmp_path / "bad" / "b.png")
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError) as err:
        discover_folder(tmp_path / "good", [tmp_path / "bad"], mask_dirs=tmp_path / "masks")
    assert str(tmp_path / "masks" / "b_mask.png") in str(err.value)


def test_folder_layout_needs_normal_dir() -> None:
    with pytest.raises(ConfigError, match="normal_dir"):
        discover("somewhere", layout="folder")


def test_non_images_and_hidden_files_are_skipped(mvtec: Path) -> None:
    good = mvtec / "bottle" / "train" / "good"
    (good / "notes.txt").write_text("hello")
    (good / ".DS_Store").write_bytes(b"\0\1\2")
    (good / "._000.png").write_bytes(b"AppleDouble junk")  # macOS companion file, not an image
    (good / "sub").mkdir()
    names = [p.name for p in list_images(good)]
    assert names == ["000.png", "001.png", "002.png"]
    assert len(discover(mvtec, categories="bottle", split="train")) == 3


def test_grayscale_rgba_palette_16bit_images_are_accepted(tmp_path: Path) -> None:
    good = tmp_path / "cat" / "train" / "good"
    good.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(good / "gray.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA").save(good / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB").quantize(8).save(good / "pal.png")
    Image.fromarray(rng.integers(0, 65536, (8, 8), dtype=np.uint16)).save(good / "deep.png")
    Image.fromarray(rng.integers(0, 65536, (8, 8), dtype=np.uint16)).save(good / "deep.tif")
    records = discover(tmp_path / "cat", check="full")
    assert [r.image_path.name for r in records] == ["deep.png", "deep.tif", "gray.png", "pal.png", "rgba.png"]


# ---------------------------------------------------------------- bad input: each names the file and the fix


def _assert_names(err: pytest.ExceptionInfo[InputError], *paths: Path) -> None:
    message = str(err.value)
    for p in paths:
        assert str(p) in message, message
    assert "Fix" in message, message


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        discover(tmp_path / "nope")
    _assert_names(err, tmp_path / "nope")


def test_root_without_categories(tmp_path: Path) -> None:
    (tmp_path / "random").mkdir()
    with pytest.raises(InputError) as err:
        discover(tmp_path)
    _assert_names(err, tmp_path)
    assert "train/good" in str(err.value)


def test_empty_category(mvtec: Path) -> None:
    for p in (mvtec / "grid" / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(InputError) as err:
        discover(mvtec)
    _assert_names(err, mvtec / "grid" / "train" / "good")
    assert "'grid'" in str(err.value)
    # the other category alone is fine
    assert len(discover(mvtec, categories=["bottle"])) == 8
    # and a category holding only test images fails the same way
    make_category_tree(mvtec, "screw", n_train=0)
    with pytest.raises(InputError, match="'screw' has no training images"):
        discover(mvtec, categories="screw")


def test_defect_image_without_mask_names_the_expected_mask(mvtec: Path) -> None:
    mask = mvtec / "bottle" / "ground_truth" / "broken_large" / "001_mask.png"
    mask.unlink()
    with pytest.raises(InputError) as err:
        discover(mvtec, layout="mvtec")
    _assert_names(err, mvtec / "bottle" / "test" / "broken_large" / "001.png", mask)


def test_missing_ground_truth_folder_means_no_pixel_labels(mvtec: Path) -> None:
    import shutil

    shutil.rmtree(mvtec / "grid" / "ground_truth")
    records = discover(mvtec, categories="grid", split="test")
    assert [(r.label, r.mask_path) for r in records] == [(0, None), (1, None), (1, None)]


def test_mask_of_another_size(mvtec: Path) -> None:
    mask = mvtec / "grid" / "ground_truth" / "bent" / "000_mask.png"
    write_mask(mask, size=(12, 10))
    with pytest.raises(InputError) as err:
        discover(mvtec)
    _assert_names(err, mask, mvtec / "grid" / "test" / "bent" / "000.png")
    assert "12×10" in str(err.value) and "24×20" in str(err.value)
    # without header checks the index builds; the dataset then reports the mismatch when it loads the pair
    assert len(discover(mvtec, check="none")) == 15


def test_corrupt_image_is_an_error_naming_the_file(mvtec: Path) -> None:
    bad = mvtec / "bottle" / "test" / "good" / "001.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(InputError) as err:
        discover(mvtec)
    _assert_names(err, bad)


def test_truncated_image_is_caught_by_full_check(mvtec: Path) -> None:
    bad = mvtec / "bottle" / "train" / "good" / "001.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    discover(mvtec, check="headers")  # the header alone looks fine
    with pytest.raises(InputError) as err:
        discover(mvtec, check="full")
    _assert_names(err, bad)


def test_bad_option_values(mvtec: Path) -> None:
    with pytest.raises(ConfigError):
        discover(mvtec, layout="coco")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        discover(mvtec, split="val")
    with pytest.raises(ConfigError):
        discover_mvtec(mvtec, check="maybe")  # type: ignore[arg-type]
