"""Image datasets: items against ADer's torchvision pipeline, decoding errors, prediction inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

from ssmad.data.images import AnomalyImageDataset, InferenceDataset
from ssmad.data.layout import discover
from ssmad.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from ssmad.errors import InputError

from ._trees import make_category_tree, write_image, write_mask

PRE = Preprocessing(image_size=16)


def _ader_image(path: Path) -> torch.Tensor:
    tf = T.Compose([T.Resize((16, 16)), T.CenterCrop(16), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return tf(Image.open(path).convert("RGB"))


def _ader_mask(path: Path) -> torch.Tensor:
    binary = Image.fromarray((np.asarray(Image.open(path)) > 0).astype(np.uint8) * 255, mode="L")
    m = T.Compose([T.Resize((16, 16)), T.CenterCrop(16), T.ToTensor()])(binary)
    return (m > 0.5).float()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_category_tree(tmp_path, "bottle", n_train=2, n_test_good=1, defects={"crack": 2})
    make_category_tree(tmp_path, "wood", n_train=2, n_test_good=1, defects={"hole": 1})
    return tmp_path


def test_items_match_ader_pipeline(root: Path) -> None:
    ds = AnomalyImageDataset(discover(root), PRE)
    assert len(ds) == 9 and ds.categories == ["bottle", "wood"]
    for i, r in enumerate(ds.records):
        item = ds[i]
        assert set(item) == {"image", "mask", "has_mask", "label", "category", "defect_type", "image_path"}
        assert item["image_path"] == str(r.image_path)
        assert (item["label"], item["category"], item["defect_type"]) == (r.label, r.category, r.defect_type)
        torch.testing.assert_close(item["image"], _ader_image(r.image_path), rtol=0, atol=1e-6)
        assert item["mask"].shape == (1, 16, 16) and item["mask"].dtype == torch.float32
        if r.mask_path is None:
            assert item["mask"].sum() == 0
        else:
            expected = _ader_mask(r.mask_path)
            assert expected.sum() > 0
            torch.testing.assert_close(item["mask"], expected)
        assert item["has_mask"] is True


def test_labels_follow_records(root: Path) -> None:
    ds = AnomalyImageDataset(discover(root), PRE)
    assert ds.labels.tolist() == [r.label for r in ds.records]
    assert ds.labels.tolist().count(1) == 3


def test_dataloader_batches(root: Path) -> None:
    ds = AnomalyImageDataset.from_root(root, split="test", preprocessing=PRE)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 16, 16)
    assert batch["mask"].shape == (4, 1, 16, 16)
    assert batch["label"].tolist() == [r.label for r in ds.records[:4]]
    assert batch["image_path"] == [str(r.image_path) for r in ds.records[:4]]


def test_anomalous_images_without_masks_are_flagged(root: Path) -> None:
    import shutil

    shutil.rmtree(root / "wood" / "ground_truth")
    ds = AnomalyImageDataset(discover(root, categories="wood", split="test"), PRE)
    flags = [(ds[i]["label"], ds[i]["has_mask"]) for i in range(len(ds))]
    assert flags == [(0, True), (1, False)]


def test_visa_instance_masks_are_binarised(tmp_path: Path) -> None:
    make_category_tree(tmp_path, "pcb1", defects={"bad": 1}, naming="visa")
    mask_path = tmp_path / "pcb1" / "ground_truth" / "bad" / "000.png"
    write_mask(mask_path, value=2)  # an instance id, not 255
    ds = AnomalyImageDataset(discover(tmp_path, split="test"), PRE)
    item = ds[len(ds) - 1]
    torch.testing.assert_close(item["mask"], _ader_mask(mask_path))
    assert item["mask"].sum() > 0


def test_grayscale_and_16bit_images_give_three_channels(tmp_path: Path) -> None:
    good = tmp_path / "c" / "train" / "good"
    write_image(good / "a.png", mode="L")
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (20, 24), dtype=np.uint16)).save(good / "b.png")
    ds = AnomalyImageDataset(discover(tmp_path / "c"), PRE)
    for i in range(2):
        img = ds[i]["image"]
        assert img.shape == (3, 16, 16)
        # gray replicated: after undoing the per-channel normalisation the three channels agree
        raw = img * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
        torch.testing.assert_close(raw[0], raw[1], atol=1e-6, rtol=0)
        torch.testing.assert_close(raw[1], raw[2], atol=1e-6, rtol=0)


def test_truncated_image_fails_at_load_with_its_name(root: Path) -> None:
    records = discover(root)
    bad = records[0].image_path
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    ds = AnomalyImageDataset(records, PRE)
    with pytest.raises(InputError) as err:
        ds[0]
    assert str(bad) in str(err.value) and "Fix" in str(err.value)


def test_mask_size_mismatch_is_caught_at_load_when_not_checked_before(root: Path) -> None:
    mask = root / "wood" / "ground_truth" / "hole" / "000_mask.png"
    write_mask(mask, size=(10, 10))
    records = discover(root, check="none")
    ds = AnomalyImageDataset(records, PRE)
    idx = next(i for i, r in enumerate(records) if r.mask_path == mask)
    with pytest.raises(InputError) as err:
        ds[idx]
    assert str(mask) in str(err.value)


def test_inference_inputs(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", seed=i)
    (tmp_path / "in" / "notes.txt").write_text("skip me")
    folder = InferenceDataset(tmp_path / "in", PRE)
    assert [item["image_path"] for item in folder] == [str(tmp_path / "in" / f"{i}.png") for i in range(3)]
    torch.testing.assert_close(folder[1]["image"], _ader_image(tmp_path / "in" / "1.png"), rtol=0, atol=1e-6)

    arrays = np.stack([np.asarray(Image.open(tmp_path / "in" / f"{i}.png")) for i in range(3)])
    stacked = InferenceDataset(arrays, PRE)
    assert len(stacked) == 3 and stacked[2]["image_path"] == "array[2]"
    for i in range(3):
        torch.testing.assert_close(stacked[i]["image"], folder[i]["image"])
    mixed = InferenceDataset([tmp_path / "in" / "0.png", arrays[1]], PRE)
    assert [m["image_path"] for m in mixed] == [str(tmp_path / "in" / "0.png"), "array[1]"]
    single = InferenceDataset(arrays[0], PRE)
    assert len(single) == 1
    gray_stack = InferenceDataset(np.zeros((2, 10, 12), np.uint8), PRE)  # two grayscale images
    assert len(gray_stack) == 2


def test_inference_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        InferenceDataset(tmp_path / "missing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        InferenceDataset(tmp_path / "empty")
    (tmp_path / "cube.mat").write_bytes(b"x")
    with pytest.raises(InputError, match="not an image file"):
        InferenceDataset(tmp_path / "cube.mat")
