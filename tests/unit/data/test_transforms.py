"""Preprocessing: torchvision (ADer's pipeline) and hand computations as oracles, mode conversions, replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision import transforms as T

from ssmad.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    Preprocessing,
    preprocess_image,
    preprocess_mask,
)
from ssmad.errors import ConfigError, InputError


def _rgb(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize(
    ("image_size", "crop_size", "tv_size", "tv_crop"),
    [(16, None, (16, 16), (16, 16)), (16, 12, (16, 16), (12, 12)), ((20, 16), (13, 10), (20, 16), (13, 10))],
)
def test_matches_ader_torchvision_pipeline(image_size, crop_size, tv_size, tv_crop) -> None:
    img = _rgb(29, 37)
    oracle = T.Compose(
        [
            T.Resize(tv_size, interpolation=T.InterpolationMode.BILINEAR),
            T.CenterCrop(tv_crop),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )(img)
    pre = Preprocessing(image_size=image_size, crop_size=crop_size)
    out = preprocess_image(img, pre)
    assert out.dtype == torch.float32 and out.shape == (3, *tv_crop) == (3, *pre.output_hw)
    torch.testing.assert_close(out, oracle, rtol=0, atol=1e-6)


def test_normalisation_by_hand() -> None:
    colour = (10, 128, 250)
    img = Image.new("RGB", (7, 5), colour)
    for mean, std in ((IMAGENET_MEAN, IMAGENET_STD), (INCEPTION_MEAN, (0.5, 0.5, 0.5))):
        out = preprocess_image(img, Preprocessing(image_size=4, mean=mean, std=std))
        for c in range(3):
            expected = (colour[c] / 255.0 - mean[c]) / std[c]
            assert torch.allclose(out[c], torch.full((4, 4), expected), atol=1e-6)
    # e.g. the red channel with ImageNet statistics: (10/255 - 0.485) / 0.229
    assert abs(float(preprocess_image(img, Preprocessing(4))[0, 0, 0]) - (-1.94666)) < 1e-4


def test_mask_bilinear_then_threshold_by_hand() -> None:
    # 4 px wide, one defect column; shrinking to 2 px, PIL's bilinear filter (support 2 input px) gives the
    # first output pixel weights 0.75, 0.75, 0.25 over input columns 0, 1, 2 (normalised by 1.75).
    pre = Preprocessing(image_size=(1, 2), mean=(0, 0, 0), std=(1, 1, 1))
    one_col = np.array([[0, 255, 0, 0]], np.uint8)  # 0.75 * 255 / 1.75 = 109 → 0.43 → background
    two_cols = np.array([[255, 255, 0, 0]], np.uint8)  # 1.5 * 255 / 1.75 = 219 → 0.86 → defect
    assert preprocess_mask(one_col, pre).flatten().tolist() == [0.0, 0.0]
    assert preprocess_mask(two_cols, pre).flatten().tolist() == [1.0, 0.0]
    # nearest-neighbour resizing would have kept the thin column (input pixel 1 is nearest to output 0)
    nearest = np.asarray(Image.fromarray(one_col).resize((2, 1), Image.Resampling.NEAREST))
    assert nearest.flatten().tolist()[0] == 255
    # upsampling [255, 0] to 4 px: bilinear values 255, 191, 64, 0 → 1, 1, 0, 0
    up = preprocess_mask(np.array([[255, 0]], np.uint8), Preprocessing(image_size=(1, 4)))
    assert up.flatten().tolist() == [1.0, 1.0, 0.0, 0.0]


def test_mask_geometry_with_crop_matches_ader_target_pipeline() -> None:
    rng = np.random.default_rng(4)
    mask = (rng.random((29, 37)) < 0.4).astype(np.uint8) * 255
    oracle = T.Compose([T.Resize((16, 16)), T.CenterCrop(11), T.ToTensor()])(Image.fromarray(mask, "L")) > 0.5
    out = preprocess_mask(mask, Preprocessing(image_size=16, crop_size=11))
    assert out.shape == (1, 11, 11)
    torch.testing.assert_close(out, oracle.float())


def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """Antialiased bilinear (triangle) resampling matrix (n_out, n_in), as Pillow defines it."""
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = fscale
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        for j in range(lo, hi):
            weights[i, j] = max(0.0, 1.0 - abs((j + 0.5 - centre) / fscale))
        weights[i] /= weights[i].sum()
    return weights


@pytest.mark.parametrize(("in_hw", "out_hw"), [((40, 52), (16, 16)), ((9, 7), (20, 24))])
def test_mask_matches_independent_triangle_filter(in_hw, out_hw) -> None:
    rng = np.random.default_rng(1)
    mask = (rng.random(in_hw) < 0.3).astype(np.uint8)
    mask[5:8, 2:6] = 1
    out = preprocess_mask(mask * 255, Preprocessing(image_size=out_hw))[0].numpy()
    values = _triangle_weights(in_hw[0], out_hw[0]) @ (mask * 255.0) @ _triangle_weights(in_hw[1], out_hw[1]).T
    clear = np.abs(values - 127.5) > 3  # Pillow rounds to 8 bits between passes: skip pixels at the threshold
    assert clear.mean() > 0.8
    np.testing.assert_array_equal(out[clear], (values[clear] > 127.5).astype(np.float32))


def test_masks_of_any_mode_are_binarised_the_same() -> None:
    base = np.zeros((6, 8), np.uint8)
    base[1:4, 2:5] = 1
    pre = Preprocessing(image_size=(6, 8))
    expected = torch.from_numpy(base.astype(np.float32))[None]
    red = np.zeros((6, 8, 3), np.uint8)
    red[..., 0] = base * 200
    variants = [
        base,  # 0/1
        base * 255,  # 0/255
        base * 3,  # instance ids (VisA)
        base.astype(bool),
        Image.fromarray(red, "RGB"),
        Image.fromarray(red, "RGB").quantize(4),  # palette
        Image.fromarray(base.astype(np.uint16) * 65535),  # 16-bit
    ]
    for v in variants:
        torch.testing.assert_close(preprocess_mask(v, pre), expected)


def test_image_modes_are_converted_not_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pre = Preprocessing(image_size=(6, 8))
    gray = rng.integers(0, 256, (6, 8), dtype=np.uint8)
    as_rgb = preprocess_image(np.repeat(gray[..., None], 3, axis=-1), pre)
    torch.testing.assert_close(preprocess_image(Image.fromarray(gray, "L"), pre), as_rgb)
    torch.testing.assert_close(preprocess_image(gray, pre), as_rgb)

    rgba = rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    torch.testing.assert_close(
        preprocess_image(Image.fromarray(rgba, "RGBA"), pre), preprocess_image(rgba[..., :3], pre)
    )

    pal = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB").quantize(5)
    torch.testing.assert_close(preprocess_image(pal, pre), preprocess_image(np.asarray(pal.convert("RGB")), pre))

    deep = rng.integers(0, 65536, (6, 8), dtype=np.uint16)
    by_hand = np.floor(deep.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)  # v * 255 / 65535, rounded
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    for src in (tmp_path / "deep.png", deep, Image.open(tmp_path / "deep.png")):
        torch.testing.assert_close(preprocess_image(src, pre), preprocess_image(by_hand, pre))


def test_arrays_paths_and_images_give_identical_tensors(tmp_path: Path) -> None:
    img = _rgb(30, 26, seed=5)
    img.save(tmp_path / "x.png")
    pre = Preprocessing(image_size=16, crop_size=12)
    ref = preprocess_image(img, pre)
    arr = np.asarray(img)
    for src in (
        tmp_path / "x.png",
        str(tmp_path / "x.png"),
        arr,
        arr.astype(np.float32) / 255.0,  # floats in [0, 1]
        arr.astype(np.float64),  # floats on the 0–255 scale
        torch.from_numpy(arr.copy()).permute(2, 0, 1),  # channel-first tensor
    ):
        torch.testing.assert_close(preprocess_image(src, pre), ref)


def test_bad_arrays() -> None:
    pre = Preprocessing(8)
    with pytest.raises(InputError, match="shape"):
        preprocess_image(np.zeros((2, 8, 8, 3)), pre)
    with pytest.raises(InputError, match="NaN"):
        preprocess_image(np.full((8, 8, 3), np.nan), pre)
    with pytest.raises(InputError, match="shape"):
        preprocess_mask(np.zeros((2, 8, 8)), pre)


def test_preprocessing_round_trips_through_json_and_yaml() -> None:
    for pre in (
        Preprocessing(),
        Preprocessing(image_size=(224, 320), crop_size=(200, 300), mean=INCEPTION_MEAN, std=(0.5, 0.5, 0.5)),
        Preprocessing(image_size=288, crop_size=256, interpolation="BICUBIC"),
    ):
        assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
        assert Preprocessing.from_dict(yaml.safe_load(yaml.safe_dump(pre.to_dict()))) == pre
    assert Preprocessing(interpolation="BICUBIC").interpolation == "bicubic"
    assert Preprocessing(image_size=[8, 8]).image_size == (8, 8)
    assert Preprocessing.from_dict({}) == Preprocessing()
    pre = Preprocessing.from_pretrained_cfg({"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}, image_size=128)
    assert pre.mean == INCEPTION_MEAN and pre.std == (0.5, 0.5, 0.5) and pre.output_hw == (128, 128)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 0},
        {"image_size": 16, "crop_size": 32},
        {"std": (0.5, 0.0, 0.5)},
        {"mean": (0.5, 0.5)},
        {"interpolation": "cubic-ish"},
        {"image_size": True},
    ],
)
def test_invalid_preprocessing(kwargs) -> None:
    with pytest.raises(ConfigError):
        Preprocessing(**kwargs)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="resize_mode"):
        Preprocessing.from_dict({"image_size": 8, "resize_mode": "pad"})
