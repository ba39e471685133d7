"""``ssmad train`` / ``test`` / ``predict`` on images through ``ssmad.cli.main.main`` (exit codes, files, messages)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ssmad.cli.main import main
from ssmad.engine.checkpoint import load_state_dict

HEADLINE = ("image_AUROC", "image_AP", "image_F1Max", "pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO")


def _train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "train",
        "--model",
        "tiny",
        "--data.root",
        str(root),
        "--trainer.epochs",
        "2",
        "--trainer.batch_size",
        "4",
        "--trainer.progress",
        "false",
        "--device",
        "cpu",
        "--output.root",
        str(out),
        "--output.images",
        "2",
        *extra,
    ]


def _mambaad_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "train", "--data.root", str(root), "--device", "cpu", "--output.root", str(out), *extra]


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_train_test_predict_without_the_training_data(
    synth_root: Path, tmp_path: Path, tiny_registered: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import ssmad

    out = tmp_path / "results"
    assert main(_train_args(synth_root, out)) == 0
    run = out / "tiny" / "synth" / "brick" / "v1"
    assert (out / "tiny" / "synth" / "brick" / "latest").resolve() == run.resolve()
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "model.safetensors", "metadata.json", "metrics.json", "metrics.csv", "report.html"} <= names
    assert "checkpoints" not in names  # the resume state is removed after success
    assert list((run / "images").rglob("*.png"))
    train_metrics = _load(run / "metrics.json")
    assert "run folder" in capsys.readouterr().out

    # ssmad test reproduces metrics.json, into a new tests/v<N> folder each time
    quick = ["--device", "cpu", "--output.images", "0", "--output.report", "false"]
    assert main(["-q", "test", "--run", str(run.parent / "latest"), *quick]) == 0
    assert main(["-q", "test", "--run", str(run), *quick]) == 0
    for version in ("v1", "v2"):
        again = _load(run / "tests" / version / "metrics.json")
        for key in HEADLINE:
            assert again[key] == pytest.approx(train_metrics[key], rel=1e-9, abs=1e-12), key
        assert again["per_category"].keys() == train_metrics["per_category"].keys()
    # an output folder that holds results already is refused, unchanged
    before = (run / "tests" / "v1" / "metrics.json").read_bytes()
    code = main(["-q", "test", "--run", str(run), "--device", "cpu", "--out", str(run / "tests" / "v1")])
    assert code == 2
    assert "exists" in capsys.readouterr().err
    assert (run / "tests" / "v1" / "metrics.json").read_bytes() == before

    # prediction needs neither the training data nor the encoder weights: move the data away
    moved = tmp_path / "elsewhere"
    shutil.move(str(synth_root), str(moved))
    new = tmp_path / "new"
    new.mkdir()
    for f in sorted((moved / "brick" / "test").rglob("*.png"))[:3]:
        shutil.copy(f, new / f"{f.parent.name}_{f.name}")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(new / "odd.png")
    pred = tmp_path / "pred"
    assert main(["-q", "predict", "--run", str(run), "--input", str(new), "--out", str(pred), "--device", "cpu"]) == 0
    scores = _load(pred / "scores.json")
    files = sorted(new.glob("*.png"))
    assert scores["n_images"] == len(files) == 4 and scores["skipped"] == []
    det = ssmad.load(run)
    expected = {p.image_path: p for p in det.predict_maps(files)}
    for row in scores["images"]:
        p = expected[row["image_path"]]
        assert row["pred_score"] == pytest.approx(p.pred_score, rel=1e-6)
        assert row["pred_label"] == int(p.pred_score > scores["threshold"])
        amap = np.load(pred / row["map"])
        h, w = np.asarray(Image.open(row["image_path"])).shape[:2]
        assert amap.shape == (h, w) and amap.dtype == np.float32
        np.testing.assert_allclose(amap, p.anomaly_map, rtol=1e-6)
        assert Image.open(pred / row["overlay"]).format == "PNG"
    assert sorted(p.name for p in (pred / "maps").iterdir()) == sorted(f"{f.stem}.npy" for f in files)

    # predicting into the same folder again is refused and leaves scores.json as it was
    before = (pred / "scores.json").read_bytes()
    assert main(["-q", "predict", "--run", str(run), "--input", str(new), "--out", str(pred), "--device", "cpu"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert (pred / "scores.json").read_bytes() == before

    # an array batch saved as .npy
    np.save(tmp_path / "batch.npy", np.random.default_rng(1).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8))
    pred2 = tmp_path / "pred2"
    code = main(["-q", "predict", "--run", str(run), "--input", str(tmp_path / "batch.npy"), "--out", str(pred2)])
    assert code == 0
    rows = _load(pred2 / "scores.json")["images"]
    assert [r["image_path"] for r in rows] == ["array[0]", "array[1]"]
    assert all(np.load(pred2 / r["map"]).shape == (24, 40) for r in rows)

    # a second training never touches the first run
    model_before = (run / "model.safetensors").read_bytes()
    shutil.move(str(moved), str(synth_root))
    assert main(_train_args(synth_root, out, "--seed", "1")) == 0
    assert (run / "model.safetensors").read_bytes() == model_before
    assert (out / "tiny" / "synth" / "brick" / "latest").resolve().name == "v2"


def test_cli_resume_after_a_kill_equals_an_uninterrupted_run(
    synth_root: Path, tmp_path: Path, tiny_registered: str
) -> None:
    from ssmad.cli.train import resolve_config
    from ssmad.engine.runner import train_run

    from .test_train import KillAt, Killed

    extra = ("--trainer.epochs", "3", "--deterministic", "--threshold.holdout", "0", "--output.report", "false")
    full_out, killed_out = tmp_path / "full", tmp_path / "killed"
    assert main(_train_args(synth_root, full_out, *extra)) == 0

    import argparse

    from ssmad.cli.main import build_parser

    args = build_parser().parse_args(_train_args(synth_root, killed_out, *extra)[1:])
    assert isinstance(args, argparse.Namespace)
    config, _ = resolve_config(args)
    with pytest.raises(Killed):
        train_run(config, callbacks=[KillAt(iteration=5)])  # killed in epoch 3 of 3
    run = killed_out / "tiny" / "synth" / "brick" / "v1"
    assert (run / "checkpoints" / "last.json").is_file() and not (run / "metadata.json").exists()
    assert main(["-q", "predict", "--run", str(run), "--input", str(synth_root), "--out", str(tmp_path / "p")]) == 2

    assert main([*_train_args(synth_root, killed_out, *extra), "--resume"]) == 0
    assert not (killed_out / "tiny" / "synth" / "brick" / "v2").exists()  # resumed in place
    a = load_state_dict(full_out / "tiny" / "synth" / "brick" / "v1" / "model.safetensors")
    b = load_state_dict(run / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert main([*_train_args(synth_root, killed_out, *extra), "--resume"]) == 2  # nothing left to resume


def test_corrupt_test_image_truncated_is_skipped_garbage_stops_before_writing(
    synth_root: Path, tmp_path: Path, tiny_registered: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = sorted((synth_root / "brick" / "test" / "good").glob("*.png"))
    n_test = len(list((synth_root / "brick" / "test").rglob("*.png")))
    data = good[1].read_bytes()
    good[1].write_bytes(data[: len(data) // 2])  # valid header, truncated pixel data: found only when decoded
    out = tmp_path / "results"
    assert main(_train_args(synth_root, out)) == 0
    run = out / "tiny" / "synth" / "brick" / "v1"
    metrics = _load(run / "metrics.json")
    assert metrics["n_images"] == n_test - 1
    assert len(metrics["skipped"]) == 1 and good[1].name in metrics["skipped"][0]
    assert np.isfinite(metrics["image_AUROC"])

    # prediction over a folder with the broken file: the others are scored, the broken one is listed
    pred = tmp_path / "pred"
    folder = synth_root / "brick" / "test" / "good"
    assert main(["-q", "predict", "--run", str(run), "--input", str(folder), "--out", str(pred)]) == 0
    scores = _load(pred / "scores.json")
    assert scores["n_images"] == len(good) - 1 and len(scores["skipped"]) == 1
    assert "skipped 1" in capsys.readouterr().out

    # garbage (no image header) is caught when the data set is indexed: exit 2 naming the file, no new run
    good[0].write_bytes(b"this is not a png")
    assert main(_train_args(synth_root, out)) == 2
    err = capsys.readouterr().err
    assert good[0].name in err and "Fix" in err
    assert not (out / "tiny" / "synth" / "brick" / "v2").exists()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (("--model.encoder", "resnet999", "--model.pretrained", "false"), ("unknown encoder 'resnet999'", "resnet")),
        (("--model.image_size", "100"), ("image_size must be a multiple of 32", "100")),
        (("--trainer.epoch", "3"), ("unknown key(s) 'trainer.epoch'", "did you mean 'epochs'", "Fix")),
        (("--model.encodr", "resnet18"), ("unknown option(s) encodr", "valid options")),
        (("--model", "mambaad2000"), ("unknown model 'mambaad2000'", "mambaad")),
    ],
    ids=["encoder", "image_size", "trainer_key", "model_key", "model_name"],
)
def test_bad_options_exit_2_with_a_message_and_no_run_folder(
    synth_master: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], needles: tuple
) -> None:
    out = tmp_path / "results"
    assert main(_mambaad_args(synth_master, out, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ssmad train: error:") and "Traceback" not in err
    for needle in needles:
        assert needle in err
    assert not out.exists() or not list(out.rglob("v1"))


def test_encoder_weights_of_another_architecture_exit_2(
    synth_master: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import timm

    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(), weights)
    out = tmp_path / "results"
    args = ("--model.encoder", "resnet34", "--model.encoder_weights", str(weights), "--model.image_size", "64")
    assert main(_mambaad_args(synth_master, out, *args)) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and "another architecture" in err
    assert not list(out.rglob("v1"))


def test_training_folder_without_images_and_bad_config_file_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], synth_master: Path
) -> None:
    empty = tmp_path / "data"
    (empty / "brick" / "train" / "good").mkdir(parents=True)
    (empty / "brick" / "train" / "good" / "notes.txt").write_text("no images here")
    assert main(_mambaad_args(empty, tmp_path / "results", "--model.pretrained", "false")) == 2
    err = capsys.readouterr().err
    assert "no training images" in err and str(empty / "brick") in err and "Fix" in err

    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  name: mambaad\ntrainer:\n  epochs: 1\n  batchsize: 4\n")
    assert main(["-q", "train", "--config", str(cfg), "--data.root", str(synth_master)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "trainer.batchsize" in err and "batch_size" in err

    assert main(["-q", "predict", "--run", str(tmp_path / "nope"), "--input", str(synth_master), "--out", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_print_config_shows_resolved_defaults(capsys: pytest.CaptureFixture[str], synth_master: Path) -> None:
    import yaml

    code = main(["train", "--data.root", str(synth_master), "--trainer.epochs", "7", "--seed", "3", "--print_config"])
    assert code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["trainer"]["epochs"] == 7 and cfg["trainer"]["seed"] == 3
    assert cfg["trainer"]["base_lr"] == 0.005 and cfg["trainer"]["clip_grad"] == 5.0
    assert cfg["model"]["encoder"] == "resnet34" and cfg["model"]["image_size"] == 256
