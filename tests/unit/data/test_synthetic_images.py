"""Synthetic MVTec-style image sets: determinism, layout, exact masks, refusal to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssmad.data.synthetic import CATEGORIES, DEFECTS, apply_defect, defect_sample, make_mvtec_like, normal_sample
from ssmad.errors import InputError

SMALL = {"n_train": 2, "n_test_good": 1, "n_test_defect": 1, "image_size": 64}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = make_mvtec_like(tmp_path / "a", categories=("wood", "gravel"), seed=3, **SMALL)
    make_mvtec_like(tmp_path / "b", categories=("wood", "gravel"), seed=3, **SMALL)
    make_mvtec_like(tmp_path / "c", categories=("wood", "gravel"), seed=4, **SMALL)
    ta, tb, tc = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert ta == tb
    assert len(ta) == a["n_images"] + a["n_masks"] + 1  # + manifest
    pngs = [k for k in ta if k.endswith(".png") and "ground_truth" not in k]
    assert sorted(pngs) == sorted(k for k in tc if k.endswith(".png") and "ground_truth" not in k)
    assert all(ta[k] != tc[k] for k in pngs)


def test_a_category_does_not_depend_on_the_others(tmp_path: Path) -> None:
    make_mvtec_like(tmp_path / "one", categories=("brick",), seed=0, **SMALL)
    make_mvtec_like(tmp_path / "two", categories=("weave", "brick"), seed=0, **SMALL)
    assert _tree(tmp_path / "one" / "brick") == _tree(tmp_path / "two" / "brick")


def test_layout_masks_and_discovery(tmp_path: Path) -> None:
    from ssmad.data.layout import discover, summarize

    root = tmp_path / "set"
    cats = ("grass", "wood")
    summary = make_mvtec_like(root, categories=cats, n_train=3, n_test_good=2, n_test_defect=2, image_size=72)
    for cat in cats:
        assert sorted(p.name for p in (root / cat / "train" / "good").iterdir()) == ["000.png", "001.png", "002.png"]
        assert sorted(p.name for p in (root / cat / "test").iterdir()) == sorted(("good", *DEFECTS))
        assert sorted(p.name for p in (root / cat / "ground_truth").iterdir()) == sorted(DEFECTS)  # no "good"
        for img_path in sorted((root / cat).rglob("*.png")):
            if "ground_truth" in img_path.parts:
                continue
            img = _png(img_path)
            assert img.shape == (72, 72, 3) and img.dtype == np.uint8
            assert img.std() > 5  # a texture, not a flat colour
        for kind in DEFECTS:
            images = sorted((root / cat / "test" / kind).iterdir())
            masks = sorted((root / cat / "ground_truth" / kind).iterdir())
            assert [p.stem + "_mask.png" for p in images] == [p.name for p in masks]
            for mask_path in masks:
                mask = _png(mask_path)
                assert mask.shape == (72, 72)
                assert set(np.unique(mask).tolist()) == {0, 255}
    manifest = json.loads((root / "ssmad_synthetic.json").read_text())
    assert manifest["counts"] == summary["counts"]
    assert summary["counts"]["grass"] == {"train/good": 3, "test/good": 2, **{f"test/{k}": 2 for k in DEFECTS}}
    found = summarize(discover(root))
    for cat in cats:
        assert found[cat]["train"] == 3
        assert found[cat]["test_normal"] == 2
        assert found[cat]["test_anomalous"] == found[cat]["masks"] == 2 * len(DEFECTS)


def test_files_are_the_samples_and_defects_touch_only_their_mask(tmp_path: Path) -> None:
    root = tmp_path / "set"
    make_mvtec_like(root, categories=tuple(CATEGORIES), seed=7, **SMALL)
    for cat in CATEGORIES:
        for kind in DEFECTS:
            on_disk = _png(root / cat / "test" / kind / "000.png")
            mask = _png(root / cat / "ground_truth" / kind / "000_mask.png") > 0
            image, expected_mask = defect_sample(cat, kind, 0, 64, seed=7)
            np.testing.assert_array_equal(on_disk, image)
            np.testing.assert_array_equal(mask, expected_mask)
            base = normal_sample(cat, kind, 0, 64, seed=7)
            changed = (on_disk != base).any(axis=-1)
            assert not changed[~mask].any(), f"{cat}/{kind}: pixels outside the mask changed"
            # The defect really is where the mask says: most mask pixels changed (the soft deformation border least).
            assert changed[mask].mean() >= (0.4 if kind == "deformation" else 0.9), (cat, kind)
        np.testing.assert_array_equal(
            _png(root / cat / "train" / "good" / "001.png"), normal_sample(cat, "train", 1, 64, 7)
        )


@pytest.mark.parametrize("kind", DEFECTS)
def test_defects_are_visible_and_exact_on_many_draws(kind: str) -> None:
    rng = np.random.default_rng(0)
    for trial in range(8):
        cat = list(CATEGORIES)[trial % len(CATEGORIES)]
        base = normal_sample(cat, "train", trial, 96)
        image, mask = apply_defect(base, kind, rng, category_name=cat)
        assert image.dtype == np.uint8 and image.shape == base.shape and mask.shape == base.shape[:2]
        assert 4 <= mask.sum() < 0.25 * mask.size
        np.testing.assert_array_equal(image[~mask], base[~mask])
        diff = np.abs(image.astype(int) - base.astype(int)).max(axis=-1)
        assert diff[mask].mean() > 6, f"{kind} on {cat} is nearly invisible"


def test_refuses_non_empty_root_and_overwrite_replaces_only_its_entries(tmp_path: Path) -> None:
    root = tmp_path / "set"
    root.mkdir()
    make_mvtec_like(root, categories=("wood",), **SMALL)  # an empty folder is fine
    before = _tree(root)
    with pytest.raises(InputError, match="not empty"):
        make_mvtec_like(root, categories=("wood",), seed=1, **SMALL)
    assert _tree(root) == before
    (root / "notes.txt").write_text("mine")
    (root / "wood" / "stale.png").write_bytes(b"x")
    make_mvtec_like(root, categories=("wood",), seed=1, overwrite=True, **SMALL)
    assert (root / "notes.txt").read_text() == "mine"
    assert not (root / "wood" / "stale.png").exists()
    assert _tree(root / "wood") != {k: v for k, v in before.items() if k.startswith("wood")}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_a_file_as_root_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        make_mvtec_like(f, categories=("wood",), **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 16}, "image_size"),
        ({"image_size": 64.0}, "image_size"),
        ({"categories": ("carpet",)}, "carpet"),
        ({"categories": ()}, "no synthetic categories"),
        ({"defects": ("crack",)}, "crack"),
        ({"n_train": 0}, "n_train"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {**SMALL, "categories": ("wood",), **kwargs}
    with pytest.raises(InputError, match=match):
        make_mvtec_like(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_categories_look_different() -> None:
    means = {c: normal_sample(c, "train", 0, 64).reshape(-1, 3).mean(axis=0) for c in CATEGORIES}
    names = list(means)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 10, (a, b)
