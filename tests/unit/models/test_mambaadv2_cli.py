"""MambaADv2 through the product: ``ssmad train`` / ``test`` / ``predict`` on tiny synthetic data, the run folder and
HTML report, ``ssmad.load`` reproducing the metrics and the scan plan, the detector's save/load round trip, presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ssmad
from ssmad.cli.main import main

HEADLINE = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")
MODEL = [
    "--model",
    "mambaadv2",
    "--model.encoder",
    "tf_efficientnet_lite0",
    "--model.pretrained",
    "false",
    "--model.image_size",
    "64",
    "--model.decoder_depths",
    "[2, 2, 2, 2]",
    "--model.d_state",
    "4",
    "--model.headdim",
    "8",
]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssmad.data.synthetic import make_mvtec_like

    root = tmp_path_factory.mktemp("v2") / "synth"
    make_mvtec_like(
        root, categories=("wood",), n_train=4, n_test_good=2, n_test_defect=1, defects=("stain",), image_size=64, seed=0
    )
    return root


def test_train_test_predict_and_load(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["-q", "train", "--data.root", str(data), *MODEL, "--trainer.epochs", "1", "--trainer.batch_size", "4"]
    args += ["--trainer.progress", "false", "--device", "cpu", "--output.root", str(out), "--output.images", "1"]
    assert main(args) == 0
    run = out / "mambaadv2" / "synth" / "wood" / "v1"
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "model.safetensors", "metadata.json", "metrics.json", "report.html"} <= names
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(0.0 <= metrics[k] <= 1.0 for k in HEADLINE)
    assert json.loads((run / "metadata.json").read_text())["model"] == "mambaadv2"

    quick = ["--device", "cpu", "--output.images", "0", "--output.report", "false"]
    assert main(["-q", "test", "--run", str(run), *quick]) == 0
    again = json.loads((run / "tests" / "v1" / "metrics.json").read_text())
    for key in HEADLINE:
        assert again[key] == pytest.approx(metrics[key], rel=1e-9, abs=1e-12), key

    files = sorted((data / "wood" / "test").rglob("*.png"))
    pred = tmp_path / "pred"
    assert main(["-q", "predict", "--run", str(run), "--input", str(files[0].parent), "--out", str(pred)]) == 0
    scores = json.loads((pred / "scores.json").read_text())
    det = ssmad.load(run)
    assert det.net_.decoder.plan_set  # the plan chosen during training came back with the weights
    expected = {p.image_path: p.pred_score for p in det.predict_maps(sorted(files[0].parent.glob("*.png")))}
    for row in scores["images"]:
        assert row["pred_score"] == pytest.approx(expected[row["image_path"]], rel=1e-6)


def test_detector_save_load_round_trip(data: Path, tmp_path: Path) -> None:
    det = ssmad.create_model(
        "mambaadv2",
        encoder="tf_efficientnet_lite0",
        pretrained=False,
        image_size=64,
        decoder_depths=(2, 2, 2, 2),
        d_state=4,
        headdim=8,
        rotary=False,
        trainer={"epochs": 1, "batch_size": 4, "device": "cpu", "progress": False},
    )
    det.fit(data)
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    before = det.decision_function(images)
    det.save(tmp_path / "saved")
    back = ssmad.load(tmp_path / "saved")
    assert back.config == det.config and back.config.rotary is False
    assert torch.equal(back.net_.decoder.scan_plan, det.net_.decoder.scan_plan)
    np.testing.assert_allclose(back.decision_function(images), before, rtol=1e-6)


@pytest.mark.parametrize("preset", ["mambaadv2_mvtec", "mambaadv2_cpu_quick"])
def test_presets_are_valid(preset: str, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    assert main(["train", "--config", preset, "--data.root", "x", "--print_config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["name"] == "mambaadv2"
    from ssmad.models.mambaadv2 import MambaADv2Config

    MambaADv2Config.from_dict({k: v for k, v in cfg["model"].items() if k != "name"})
