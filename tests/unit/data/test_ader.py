"""ADer's ``meta.json`` index on trees written by the test: records, counts, folds, validation, exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssmad.cli.main import main
from ssmad.data.ader import discover_ader
from ssmad.data.layout import count_kinds, detect_layout, discover, summarize
from ssmad.data.records import Problems
from ssmad.errors import ConfigError, InputError

from ._trees import make_ader_tree, make_category_tree


@pytest.fixture
def ader(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / "medical"
    return root, make_ader_tree(root)


def _expected(meta: dict[str, Any], root: Path, phases: dict[str, str]) -> set[tuple[Any, ...]]:
    """The records the index describes, computed from the index itself."""
    out = set()
    for phase, split in phases.items():
        for cls, entries in meta[phase].items():
            for e in entries:
                mask = root / e["mask_path"] if e["anomaly"] and e["mask_path"] else None
                kind = (e["specie_name"] or "bad") if e["anomaly"] else "good"
                out.add((root / e["img_path"], mask, e["anomaly"], cls, kind, split))
    return out


def _as_tuples(records: list[Any]) -> set[tuple[Any, ...]]:
    return {(r.image_path, r.mask_path, r.label, r.category, r.defect_type, r.split) for r in records}


def test_records_follow_the_index(ader: tuple[Path, dict[str, Any]]) -> None:
    root, meta = ader
    assert detect_layout(root) == "ader"
    records = discover(root)
    assert len(records) == len(_as_tuples(records))
    assert _as_tuples(records) == _expected(meta, root, {"train": "train", "test": "test"})
    assert summarize(records) == {
        "bottle": {"train": 3, "test_normal": 2, "test_anomalous": 3, "masks": 2},
        "liver": {"train": 2, "test_normal": 2, "test_anomalous": 0, "masks": 0},
    }
    assert count_kinds(records) == {
        "bottle": {"train": {"good": 3}, "test": {"good": 2, "broken": 2, "crack": 1}},
        "liver": {"train": {"good": 2}, "test": {"good": 2}},
    }
    crack = [r for r in records if r.defect_type == "crack"]
    assert len(crack) == 1 and crack[0].label == 1 and crack[0].mask_path is None  # image-level label only
    assert records == discover(root, layout="ader")  # auto and explicit agree


def test_validation_phase_only_when_asked(ader: tuple[Path, dict[str, Any]]) -> None:
    root, meta = ader
    plain = discover(root, split="train")
    with_val = discover(root, split="train", train_on_validation=True)
    added = _as_tuples(with_val) - _as_tuples(plain)
    assert added == _expected(meta, root, {"validation": "train"})
    assert len(added) == 1


def test_categories_and_splits(ader: tuple[Path, dict[str, Any]]) -> None:
    root, meta = ader
    liver = discover(root, categories=["liver"], split="test")
    assert _as_tuples(liver) == {t for t in _expected(meta, root, {"test": "test"}) if t[3] == "liver"}
    with pytest.raises(InputError, match=r"'kidney' not found.*present: bottle, liver"):
        discover(root, categories=["kidney"])


def test_coco_fold_selects_its_index(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    meta = make_ader_tree(root, meta_name="meta_20_2.json")
    assert detect_layout(root) == "mvtec"  # no meta.json: the fold must be named
    assert detect_layout(root, fold=2) == "ader"
    records = discover(root, fold=2)
    assert _as_tuples(records) == _expected(meta, root, {"train": "train", "test": "test"})
    assert discover(root, index="meta_20_2.json") == records
    with pytest.raises(InputError, match=r"meta_20_1\.json does not exist \(present: meta_20_2\.json\).*--data\.fold"):
        discover(root, fold=1)
    with pytest.raises(ConfigError, match="fold"):
        discover_ader(root, fold=-1)


def test_an_ader_index_beside_an_mvtec_tree_gives_the_same_images(tmp_path: Path) -> None:
    root = tmp_path / "mvtec"
    make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 2})
    tree = discover(root, layout="mvtec")
    meta = {"train": {}, "test": {}}
    for r in tree:
        entry = {
            "img_path": r.image_path.relative_to(root).as_posix(),
            "mask_path": "" if r.mask_path is None else r.mask_path.relative_to(root).as_posix(),
            "cls_name": r.category,
            "specie_name": r.defect_type,
            "anomaly": r.label,
        }
        meta[r.split].setdefault(r.category, []).append(entry)
    (root / "meta.json").write_text(json.dumps(meta))
    assert detect_layout(root) == "ader"
    assert discover(root) == tree


def _break(root: Path, meta: dict[str, Any], how: str) -> list[str]:
    """Damage the tree; return the texts the error message must contain."""
    name = root / "meta.json"
    broken = meta["test"]["bottle"][3]  # the second 'broken' image
    if how == "mask_missing":
        (root / broken["mask_path"]).unlink()
        return [str(name), "phase 'test'", "class 'bottle'", "entry 3", str(root / broken["mask_path"]), "Fix"]
    if how == "image_missing":
        (root / broken["img_path"]).unlink()
        return [str(name), "entry 3", str(root / broken["img_path"]), "does not exist", "Fix"]
    if how == "bad_label":
        broken["anomaly"] = 2
        name.write_text(json.dumps(meta))
        return [str(name), "entry 3", "'anomaly' must be 0", "Fix"]
    if how == "entry_without_path":
        del broken["img_path"]
        name.write_text(json.dumps(meta))
        return [str(name), "entry 3", "'img_path'", "Fix"]
    if how == "no_training_images":
        meta["train"]["liver"] = []
        name.write_text(json.dumps(meta))
        return [str(name), "'liver'", "no normal training images", "Fix"]
    if how == "not_json":
        name.write_text(json.dumps(meta)[:-3])
        return [str(name), "not valid JSON", "line 1", "Fix"]
    if how == "not_an_index":
        name.write_text(json.dumps([1, 2]))
        return [str(name), "not an ADer index", "Fix"]
    raise AssertionError(how)


BREAKS = ("mask_missing", "image_missing", "bad_label", "entry_without_path", "no_training_images", "not_json",
          "not_an_index")  # fmt: skip


@pytest.mark.parametrize("how", BREAKS)
def test_problems_exit_2_naming_the_index_and_the_fix(
    ader: tuple[Path, dict[str, Any]], how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, meta = ader
    needles = _break(root, meta, how)
    with pytest.raises(InputError) as err:
        discover(root)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    rc = main(["data", "check", str(root)])
    flat = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "Traceback" not in flat
    for needle in needles:
        assert " ".join(needle.split()) in flat, (needle, flat)


def test_collected_problems_skip_the_bad_entries(ader: tuple[Path, dict[str, Any]]) -> None:
    root, meta = ader
    for e in meta["test"]["bottle"][2:4]:  # both 'broken' images lose their masks
        (root / e["mask_path"]).unlink()
    problems = Problems(limit=1)
    records = discover(root, problems=problems)
    assert problems.count == 2 and len(problems.messages) == 1
    assert str(root / meta["test"]["bottle"][2]["mask_path"]) in problems.messages[0]
    assert summarize(records)["bottle"]["test_anomalous"] == 1  # only the crack image is left
