"""The detector facade: predict_maps over every input form, decision_function / predict consistency, thresholds,
evaluation against sklearn, and the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from ssmad.engine.predict import ImagePrediction
from ssmad.errors import ConfigError, InputError

from ._tiny import TinyDetector
from .conftest import TINY_TRAINER


@pytest.fixture(scope="module")
def fitted(synth_master: Path) -> TinyDetector:
    torch.manual_seed(0)
    return TinyDetector(trainer=TINY_TRAINER).fit(synth_master)


def _check(p: ImagePrediction, hw: tuple[int, int], det: TinyDetector) -> None:
    assert isinstance(p.pred_score, float)
    assert isinstance(p.anomaly_map, np.ndarray) and p.anomaly_map.dtype == np.float32
    assert p.anomaly_map.shape == hw
    assert isinstance(p.pred_label, bool) and p.pred_label == (p.pred_score > det.threshold_)
    assert p.pred_mask.dtype == bool and p.pred_mask.shape == hw
    np.testing.assert_array_equal(p.pred_mask, p.anomaly_map > det.pixel_threshold_)


def _oracle_score(det: TinyDetector, rgb: np.ndarray) -> float:
    """Resize (Pillow bilinear) → /255 → (x − 0.5) / 0.25 → network → map → maximum, written out here."""
    img = Image.fromarray(rgb).resize((32, 32), Image.Resampling.BILINEAR)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - 0.5) / 0.25
    t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        enc, dec = det.net_(t)
        return float(det.net_.anomaly_map(enc, dec, (32, 32)).max())


def test_predict_maps_on_paths_folder_and_array_batch(fitted: TinyDetector, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(3, 24, 40, 3), dtype=np.uint8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i, arr in enumerate(batch):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(arr).save(paths[-1])
    big = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")

    from_array = fitted.predict_maps(batch)
    from_folder = fitted.predict_maps(folder)
    from_list = fitted.predict_maps([*paths, tmp_path / "big.png"])
    assert [p.image_path for p in from_array] == ["array[0]", "array[1]", "array[2]"]
    assert [p.image_path for p in from_folder] == [str(p) for p in paths]
    assert [p.image_path for p in from_list] == [*map(str, paths), str(tmp_path / "big.png")]
    for p in [*from_array, *from_folder, *from_list[:3]]:
        _check(p, (24, 40), fitted)
    _check(from_list[3], (50, 70), fitted)
    # PNG is lossless: the same pixels give the same result whatever the input form
    for a, b, c in zip(from_array, from_folder, from_list, strict=False):
        assert a.pred_score == b.pred_score == c.pred_score
        np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
    for p, arr in zip([*from_array, from_list[3]], [*batch, big], strict=True):
        assert p.pred_score == pytest.approx(_oracle_score(fitted, arr), rel=1e-5)
        # the map at the input resolution is an interpolation of the model-resolution map (no new extremes)
        assert p.anomaly_map.max() <= p.pred_score + 1e-6


def test_maps_at_model_resolution_and_score_is_their_maximum(fitted: TinyDetector, synth_master: Path) -> None:
    files = sorted((synth_master / "brick" / "test").rglob("*.png"))
    preds = fitted.predict_maps(files)  # 32×32 images: input and model resolution agree
    low = fitted.predict_maps(files, input_resolution=False)
    for p, q in zip(preds, low, strict=True):
        assert p.anomaly_map.shape == q.anomaly_map.shape == (32, 32)
        assert p.pred_score == float(p.anomaly_map.max()) == q.pred_score


def test_decision_function_and_predict_agree_with_predict_maps(fitted: TinyDetector, synth_master: Path) -> None:
    files = sorted((synth_master / "brick" / "test").rglob("*.png"))
    preds = fitted.predict_maps(files)
    scores = fitted.decision_function(files)
    labels = fitted.predict(files)
    assert scores.dtype == np.float64 and scores.shape == (len(files),)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(scores, [p.pred_score for p in preds])
    np.testing.assert_array_equal(labels, [int(p.pred_label) for p in preds])
    np.testing.assert_array_equal(labels, (scores > fitted.threshold_).astype(np.int64))
    # moving the threshold moves the labels
    fitted_copy = TinyDetector(trainer=TINY_TRAINER)
    fitted_copy.__dict__.update(fitted.__dict__)
    fitted_copy.set_threshold(float(np.median(scores)))
    assert fitted_copy.predict(files).sum() == (scores > np.median(scores)).sum()


def test_label_free_threshold_is_the_quantile_of_normal_scores(synth_master: Path) -> None:
    det = TinyDetector(trainer=TINY_TRAINER, threshold={"holdout": 0.0, "quantile": 0.9}).fit(synth_master)
    train_scores = det.decision_function(synth_master / "brick" / "train" / "good")
    assert det.n_train_ == 8
    assert det.threshold_ == pytest.approx(np.quantile(train_scores, 0.9), rel=1e-6)
    assert det.pixel_threshold_ == det.threshold_

    held = TinyDetector(trainer=TINY_TRAINER).fit(synth_master)  # default: 10 % held out, at least one image
    assert held.n_train_ == 7
    all_scores = held.decision_function(synth_master / "brick" / "train" / "good")
    assert np.isclose(all_scores, held.threshold_, rtol=1e-6).sum() == 1  # the score of the held-out image

    fixed = TinyDetector(trainer=TINY_TRAINER, threshold={"value": 0.25}).fit(synth_master)
    assert (fixed.threshold_, fixed.pixel_threshold_) == (0.25, 0.25)


def test_evaluate_matches_sklearn(fitted: TinyDetector, synth_master: Path) -> None:
    metrics, res = fitted.evaluate(synth_master, return_results=True)
    files = sorted((synth_master / "brick" / "test").rglob("*.png"))
    assert metrics["n_images"] == len(files) == len(res)
    by_path = dict(zip(res.paths, res.scores, strict=True))
    scores = fitted.decision_function(files)
    labels = np.array([0 if f.parent.name == "good" else 1 for f in files])
    np.testing.assert_allclose([by_path[str(f)] for f in files], scores, rtol=1e-6)
    assert metrics["image_AUROC"] == pytest.approx(roc_auc_score(labels, scores))
    assert "pixel_AUROC" in metrics and metrics["skipped"] == []


def test_fit_on_arrays_and_a_flat_folder(tmp_path: Path, synth_master: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    det = TinyDetector(trainer=TINY_TRAINER).fit(arr)
    assert det.categories_ == ["array"] and det.n_train_ == 6
    flat = synth_master / "brick" / "train" / "good"
    det2 = TinyDetector(trainer=TINY_TRAINER, threshold={"holdout": 0.0}).fit(flat)
    assert det2.categories_ == ["good"] and det2.n_train_ == 8


def test_user_errors(tmp_path: Path, fitted: TinyDetector) -> None:
    with pytest.raises(InputError, match=r"not fitted.*Fix"):
        TinyDetector().predict_maps(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) widht; valid options: .*width"):
        TinyDetector(widht=3)
    with pytest.raises(ConfigError, match="epochs"):
        TinyDetector(trainer={"epoch": 3})
    with pytest.raises(InputError, match=r"does not exist.*Fix"):
        TinyDetector(trainer=TINY_TRAINER).fit(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no category folder found under .*empty.*Fix"):
        TinyDetector(trainer=TINY_TRAINER).fit(tmp_path / "empty")
    with pytest.raises(InputError, match="labelled data"):
        fitted.evaluate(np.zeros((2, 32, 32, 3), np.uint8))


def test_unreadable_input_stops_or_is_skipped(fitted: TinyDetector, tmp_path: Path, synth_master: Path) -> None:
    good = sorted((synth_master / "brick" / "test" / "good").glob("*.png"))
    bad = tmp_path / "broken.png"
    bad.write_bytes(Image.open(good[0]).tobytes()[:50])  # raw bytes, not a PNG
    inputs = [good[0], bad, good[1]]
    with pytest.raises(InputError, match=r"broken\.png"):
        fitted.predict_maps(inputs)
    skipped: list[str] = []
    preds = fitted.predict_maps(inputs, skipped=skipped)
    assert [p.image_path for p in preds] == [str(good[0]), str(good[1])]
    assert len(skipped) == 1 and "broken.png" in skipped[0]


@pytest.mark.slow  # builds the full-size network: 3–9 s on two shared cores
def test_mambaad_resnet34_256_has_the_papers_parameter_count() -> None:
    """Spec A.13: 25.62–25.65 M parameters (paper: 25.7 M); 8.17 M of them in the frozen encoder."""
    import ssmad

    net = ssmad.create_model("mambaad", encoder="resnet34", pretrained=False, image_size=256)._build_network()
    total = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert 25.6e6 <= total <= 25.7e6
    assert 17.40e6 <= trainable <= 17.50e6  # MFF_OCE 1.458 M + decoder 15.987 M
