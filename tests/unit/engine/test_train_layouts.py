"""``ssmad train --config mambaad_cpu_quick --data.root T`` end to end on a tree of each benchmark layout.

One epoch of the real MambaAD preset (random encoder, 64-pixel input, batch 2) on the small trees of
``tests/unit/data/_trees.py``: every class (also the one without anomalies) reaches the metrics, every test image
is scored, and the run records the layout options it was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ssmad.cli.main import main
from ssmad.data.layout import discover
from tests.unit.data._trees import make_ader_tree, make_mvtec3d_tree, make_realiad_tree

QUICK = ["--model.pretrained", "false", "--model.image_size", "64", "--trainer.epochs", "1",
         "--trainer.batch_size", "2", "--trainer.eval_batch_size", "4", "--trainer.progress", "false",
         "--trainer.checkpoint_every", "0", "--output.images", "0", "--output.report", "false"]  # fmt: skip

CASES = {
    "ader": (lambda root: make_ader_tree(root), []),
    "coco_fold": (lambda root: make_ader_tree(root, meta_name="meta_20_1.json"), ["--data.fold", "1"]),
    "mvtec3d": (make_mvtec3d_tree, ["--data.train_on_validation", "true"]),
    "realiad": (lambda root: make_realiad_tree(root), []),
    "realiad_ader_copy": (lambda root: make_realiad_tree(root, form="ader"), ["--data.layout", "realiad"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mambaad_cpu_quick_trains_on_each_layout(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    make, extra = CASES[case]
    root = tmp_path / "data"
    make(root)
    out = tmp_path / "results"
    argv = ["-q", "train", "--config", "mambaad_cpu_quick", "--data.root", str(root), "--output.root", str(out)]
    assert main([*argv, *QUICK, *extra]) == 0, capsys.readouterr().err
    runs = list(out.rglob("metrics.json"))
    assert len(runs) == 1
    run = runs[0].parent
    metrics = json.loads(runs[0].read_text())
    options = dict(zip(extra[::2], extra[1::2], strict=True))
    records = discover(
        root,
        options.get("--data.layout", "auto"),
        fold=int(options["--data.fold"]) if "--data.fold" in options else None,
        train_on_validation="--data.train_on_validation" in options,
    )
    test = [r for r in records if r.split == "test"]
    assert metrics["n_images"] == len(test) and metrics["skipped"] == []
    assert set(metrics["per_category"]) == {r.category for r in records}
    assert 0.0 <= metrics["image_AUROC"] <= 1.0
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert saved["root"] == str(root)
    if "--data.fold" in options:
        assert saved["fold"] == 1 and run.parts[-3] == "data_fold1"
    if "--data.train_on_validation" in options:
        assert saved["train_on_validation"] is True
