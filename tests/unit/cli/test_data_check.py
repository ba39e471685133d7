"""``ssmad data check ROOT`` on each layout: the detected layout, classes, counts per split and kind, the checks
done, and the first problems (exit code 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ssmad.cli.main import main
from ssmad.data.layout import count_kinds, discover, summarize
from tests.unit.data._trees import make_ader_tree, make_category_tree, make_mvtec3d_tree, make_realiad_tree


def _tree(tmp: Path, layout: str) -> Path:
    root = tmp / layout
    if layout == "ader":
        make_ader_tree(root)
    elif layout == "mvtec3d":
        make_mvtec3d_tree(root)
    elif layout == "realiad":
        make_realiad_tree(root)
    else:
        make_category_tree(root, "bottle", n_train=2, n_test_good=1, defects={"crack": 2})
    return root


@pytest.mark.parametrize("layout", ["ader", "mvtec3d", "realiad", "mvtec"])
def test_report_names_layout_classes_and_counts(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path, layout)
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    records = discover(root)
    first = next(line for line in out.splitlines() if line.startswith(f"{root}: layout"))  # logs may come first
    assert first.startswith(f"{root}: layout {layout}, {len(records)} images in {len(summarize(records))} categories")
    assert "every image and mask decoded" in first
    # one counts line and one kinds line per class, numbers from the records themselves
    for cat, counts in summarize(records).items():
        assert f"  {cat}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) in out
        kinds = count_kinds(records)[cat]
        line = " | ".join(f"{s}: " + ", ".join(f"{k} {n}" for k, n in ks.items()) for s, ks in kinds.items())
        assert f"    {line}\n" in out


def test_headers_only_and_first_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path, "ader")
    assert main(["data", "check", str(root), "--check", "headers"]) == 0
    assert "header read, pixels not decoded" in capsys.readouterr().out
    bad = sorted((root / "bottle" / "train" / "good").glob("*.png"))
    for p in bad:  # three unreadable images
        p.write_bytes(b"not a png")
    assert main(["data", "check", str(root), "--max-problems", "2"]) == 2
    captured = capsys.readouterr()
    assert "layout ader" in captured.out  # the summary is printed before the problems
    err = " ".join(captured.err.split())
    assert "3 problem(s)" in err and "(the first 2 below)" in err
    assert str(bad[0]) in err and str(bad[1]) in err and str(bad[2]) not in err
    assert len(re.findall(r" - cannot read the image file", err)) == 2


def test_fold_and_validation_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "coco"
    make_ader_tree(root, meta_name="meta_20_3.json")
    assert main(["data", "check", str(root), "--fold", "3", "--train-on-validation"]) == 0
    out = capsys.readouterr().out
    assert "layout ader" in out and "  bottle: train 4," in out  # 3 train + 1 validation
    assert main(["data", "check", str(root), "--fold", "0"]) == 2
    assert "meta_20_0.json does not exist (present: meta_20_3.json)" in capsys.readouterr().err
