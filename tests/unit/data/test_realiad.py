"""Real-IAD's per-class JSON files on trees written by the test: both forms, records, counts, exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssmad.cli.main import main
from ssmad.data.layout import count_kinds, detect_layout, discover, summarize
from ssmad.data.realiad import discover_realiad
from ssmad.errors import InputError

from ._trees import make_realiad_tree

JSONS = "realiad_jsons/realiad_jsons"


def _expected(docs: dict[str, dict[str, Any]], images: Path) -> set[tuple[Any, ...]]:
    """The records the JSON files describe, computed from them."""
    out = set()
    for cls, doc in docs.items():
        for split in ("train", "test"):
            for e in doc[split]:
                bad = e["anomaly_class"] != "OK"
                mask = images / cls / e["mask_path"] if bad and e["mask_path"] else None
                out.add(
                    (images / cls / e["image_path"], mask, int(bad), cls, e["anomaly_class"] if bad else "good", split)
                )
    return out


def _as_tuples(records: list[Any]) -> set[tuple[Any, ...]]:
    return {(r.image_path, r.mask_path, r.label, r.category, r.defect_type, r.split) for r in records}


@pytest.mark.parametrize("form", ["native", "ader"])
def test_records_follow_the_json_files(tmp_path: Path, form: str) -> None:
    root = tmp_path / "Real-IAD"
    docs = make_realiad_tree(root, form=form)
    assert detect_layout(root) == "realiad"
    records = discover(root)
    images = root / "realiad_1024" if form == "native" else root
    assert len(records) == len(_as_tuples(records))
    assert _as_tuples(records) == _expected(docs, images)
    assert summarize(records) == {
        "audiojack": {"train": 3, "test_normal": 2, "test_anomalous": 3, "masks": 2},
        "usb": {"train": 2, "test_normal": 2, "test_anomalous": 0, "masks": 0},
    }
    assert count_kinds(records) == {
        "audiojack": {"train": {"good": 3}, "test": {"good": 2, "BX": 2, "HS": 1}},
        "usb": {"train": {"good": 2}, "test": {"good": 2}},
    }


def test_another_json_folder_by_index(tmp_path: Path) -> None:
    root = tmp_path / "Real-IAD"
    make_realiad_tree(root)
    sv = json.loads((root / JSONS / "usb.json").read_text())
    sv["test"] = sv["test"][:1]  # a smaller "single-view" split of one class
    (root / "realiad_jsons" / "realiad_jsons_sv").mkdir()
    (root / "realiad_jsons" / "realiad_jsons_sv" / "usb.json").write_text(json.dumps(sv))
    records = discover(root, index="realiad_jsons/realiad_jsons_sv")
    assert summarize(records) == {"usb": {"train": 2, "test_normal": 1, "test_anomalous": 0, "masks": 0}}
    with pytest.raises(InputError, match="does not exist"):
        discover_realiad(root, index="realiad_jsons/nope")


def test_noisy_training_lists_keep_their_labels(tmp_path: Path) -> None:
    root = tmp_path / "Real-IAD"
    docs = make_realiad_tree(root)
    doc = docs["audiojack"]
    doc["train"].append(doc["test"].pop(2))  # a BX image in the train list (FUIAD)
    (root / JSONS / "audiojack.json").write_text(json.dumps(doc))
    train = [r for r in discover(root, split="train") if r.category == "audiojack"]
    assert sorted(r.label for r in train) == [0, 0, 0, 1]


def _break(root: Path, docs: dict[str, dict[str, Any]], how: str) -> list[str]:
    """Damage the tree; return the texts the error message must contain."""
    path = root / JSONS / "audiojack.json"
    doc = docs["audiojack"]
    bx = doc["test"][3]  # the second BX image
    base = root / "realiad_1024" / "audiojack"
    if how == "mask_missing":
        (base / bx["mask_path"]).unlink()
        return [str(path), "'test' entry 3", str(base / bx["mask_path"]), "Fix"]
    if how == "image_missing":
        (base / bx["image_path"]).unlink()
        return [str(path), "'test' entry 3", str(base / bx["image_path"]), "does not exist", "Fix"]
    if how == "entry_without_class":
        del bx["anomaly_class"]
        path.write_text(json.dumps(doc))
        return [str(path), "'test' entry 3", "anomaly_class", "Fix"]
    if how == "no_training_images":
        docs["usb"]["train"] = []
        (root / JSONS / "usb.json").write_text(json.dumps(docs["usb"]))
        return ["'usb'", "no normal training images", "Fix"]
    if how == "not_json":
        path.write_text("{")
        return [str(path), "not valid JSON", "Fix"]
    if how == "no_lists":
        path.write_text(json.dumps({"meta": {}, "train": {}}))
        return [str(path), "not a Real-IAD class file", "Fix"]
    if how == "images_missing":
        for f in sorted(base.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        base.rmdir()
        return ["'audiojack'", str(root / "realiad_1024" / "audiojack"), "Fix"]
    raise AssertionError(how)


BREAKS = ("mask_missing", "image_missing", "entry_without_class", "no_training_images", "not_json", "no_lists",
          "images_missing")  # fmt: skip


@pytest.mark.parametrize("how", BREAKS)
def test_problems_exit_2_naming_the_file_and_the_fix(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "Real-IAD"
    needles = _break(root, make_realiad_tree(root), how)
    with pytest.raises(InputError) as err:
        discover(root)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    rc = main(["data", "check", str(root)])
    flat = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "Traceback" not in flat
    for needle in needles:
        assert needle in flat, (needle, flat)


def test_root_without_json_files(tmp_path: Path) -> None:
    (tmp_path / "realiad_jsons").mkdir()
    with pytest.raises(InputError, match=r"no Real-IAD JSON files.*Fix"):
        discover(tmp_path, layout="realiad")
