"""``ssmad predict --run R`` says where the encoder's weights come from: the run's file, not a random start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import ssmad
from ssmad.cli import main as cli_main


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An RD4AD (ResNet18, 64 px, random encoder) fitted for one epoch on five synthetic images and saved."""
    from ssmad.data.synthetic import make_mvtec_like

    root = tmp_path_factory.mktemp("logs")
    make_mvtec_like(
        root / "data", categories="wood", n_train=5, n_test_good=1, n_test_defect=1, image_size=64, defects="stain"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        det = ssmad.create_model("rd4ad", encoder="resnet18", pretrained=False, image_size=64)
        det.fit(root / "data", epochs=1, batch_size=5, progress=False)
    finally:
        torch.set_num_threads(threads)
    return det.save(root / "run")


def test_predict_run_logs_the_weights_file_not_a_random_start(
    saved_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = next((saved_run.parent / "data" / "wood" / "test" / "good").glob("*.png"))
    monkeypatch.setattr(cli_main, "_setup_logging", lambda verbose: None)  # keep pytest's capture handler
    with caplog.at_level(logging.INFO, logger="ssmad"):
        code = cli_main.main(["predict", "--run", str(saved_run), "--input", str(image), "--out", str(tmp_path / "o")])
    assert code == 0
    encoder_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("encoder ")]
    assert encoder_lines == [f"encoder resnet18: weights from {saved_run / 'model.safetensors'}"]


def test_loaded_encoder_records_the_file_and_the_training_origin(saved_run: Path) -> None:
    det = ssmad.load(saved_run)
    assert det.net_.encoder.weights_path == str(saved_run / "model.safetensors")
    assert det.net_.encoder.weights_origin == "random"  # what it was trained with (saved in metadata.json)
    assert det.metadata()["training"]["encoder_weights"] == "random"  # a re-save keeps the provenance


def test_a_fresh_random_encoder_still_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from ssmad.encoders import TimmEncoder

    with caplog.at_level(logging.INFO, logger="ssmad"):
        TimmEncoder("resnet18", pretrained=False)
    assert "encoder resnet18: random initialisation (pretrained=False)" in caplog.text
