"""``ssmad demo``: data reuse, configuration, the missing-weights message, and (slow) a miniature end-to-end run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ssmad.cli.main import build_parser, main

SMALL = ["--categories", "wood", "--n-train", "2", "--n-test-good", "1", "--n-test-defect", "1", "--image-size", "64"]


def _args(out: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", "--out", str(out), *SMALL, *extra])


def test_demo_data_is_generated_once_and_reused_only_when_identical(tmp_path: Path) -> None:
    from ssmad.cli.demo import _data

    root = tmp_path / "data"
    summary = _data(root, _args(tmp_path))
    assert summary["categories"] == ["wood"]
    png = sorted(root.rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in png}
    again = _data(root, _args(tmp_path))  # same settings: reused, nothing rewritten
    assert again["counts"] == summary["counts"]
    assert {p: p.stat().st_mtime_ns for p in png} == stamps
    from ssmad.errors import InputError

    with pytest.raises(InputError, match=r"other settings.*Fix"):
        _data(root, _args(tmp_path, "--seed", "5"))


def test_demo_config_defaults_and_overrides(tmp_path: Path) -> None:
    from ssmad.cli.demo import DEMO_ENCODER, demo_config

    cfg = demo_config(_args(tmp_path, "--no-pretrained", "--trainer.batch_size", "2"), tmp_path / "data")
    assert cfg.model_name == "mambaad" and cfg.model["encoder"] == DEMO_ENCODER
    assert cfg.model["pretrained"] is False and cfg.model["image_size"] == 64
    assert cfg.trainer.batch_size == 2 and cfg.trainer.checkpoint_every == 0
    assert cfg.output.root == str(tmp_path / "results") and cfg.data.name == "synthetic"


def test_demo_without_the_weights_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ssmad.encoders

    monkeypatch.setattr(ssmad.encoders, "find_weights", lambda *a, **k: None)
    assert main(["demo", "--out", str(tmp_path / "demo"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "--no-pretrained" in err
    assert not (tmp_path / "demo").exists()  # nothing generated before the check


@pytest.mark.slow  # a real (miniature) MambaAD training: several seconds
def test_demo_end_to_end_miniature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--epochs", "1", "--no-pretrained", "--device", "cpu", "--json"]
    model = ["--model.encoder", "resnet18", "--model.decoder_depths", "[2, 2, 2, 2]", "--model.d_state", "4"]
    model += ["--model.num_directions", "2", "--trainer.batch_size", "2", "--output.images", "2"]
    assert main(["-q", "demo", "--out", str(tmp_path / "demo"), *SMALL, *extra, *model]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Path(line["run"])
    assert (run / "report.html").is_file() and (run / "model.safetensors").is_file()
    assert 0.0 <= line["image_AUROC"] <= 1.0 and line["encoder"] == "random-init"
