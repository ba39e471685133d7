"""ACMamba's diagnostics: gradient conflict, region homogeneity, the RSAL direction switch, and their reports."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmad
from ssmad.models.acmamba.pcgrad import pcgrad_backward
from ssmad.models.acmamba.superpixels import homogeneity_ratio, region_stats, representative_samples

from .test_acmamba_detector import FAST, make_scene

spectral = pytest.importorskip("spectral")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    fa, fb = torch.cat([t.reshape(-1) for t in a]).double(), torch.cat([t.reshape(-1) for t in b]).double()
    return float(fa @ fb / (fa.norm() * fb.norm()))


# -- gradient conflict -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pcgrad_reports_the_cosine_of_two_separate_backward_passes(sign: float) -> None:
    torch.manual_seed(0)
    shared = torch.nn.Linear(5, 3)
    head1, head2 = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    x = torch.randn(7, 5)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        h = shared(x)
        return head1(h).pow(2).mean(), sign * head2(h).sum()

    params = [*shared.parameters(), *head1.parameters(), *head2.parameters()]
    direct = []
    for i in range(2):  # two separate forward + backward passes, one per loss
        for p in params:
            p.grad = None
        losses()[i].backward()
        direct.append([p.grad.clone() for p in shared.parameters()])
    expected = _cos(*direct)
    full_dot = sum(float((a * b).sum()) for a, b in zip(*direct, strict=False))

    stats = pcgrad_backward(list(losses()), params, torch.Generator().manual_seed(0))
    assert stats.cosine == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert stats.projected == (full_dot < 0)


def test_pcgrad_cosine_is_nan_without_shared_parameters() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    stats = pcgrad_backward([a.sum(), -b.sum()], [a, b])
    assert math.isnan(stats.cosine) and not stats.projected  # disjoint gradients: dot 0, nothing to project


def test_fit_records_the_conflict_of_its_first_step() -> None:
    """Iteration 0 rebuilt by hand (same net, sample and unmasked target); cosine from two backward passes."""
    cube, _ = make_scene(seed=2)
    cfg = {**FAST, "iterations": 3, "seed": 5}
    det = ssmad.create_model("acmamba", **cfg).fit(cube)
    assert det.conflict_cosine_.shape == (3,) and det.conflict_projected_.shape == (3,)
    assert np.isfinite(det.conflict_cosine_).all()

    ref = ssmad.create_model("acmamba", **cfg)
    _norm, _labels, stats = ref._prepare(cube.astype(np.float64))
    net = ref._build_net(cube.shape[-1], torch.device("cpu"))
    net.train()
    bank = [torch.from_numpy(a).unsqueeze(0) for a in (stats.mean, stats.std, stats.min, stats.max)]
    s = representative_samples(*bank, scale=2.0, generator=torch.Generator().manual_seed(5))
    grads = []
    for which in (0, 1):
        net.zero_grad(set_to_none=True)
        r1, r2 = net.branches(s, torch.ones((1, s.shape[1], 1)))
        F.mse_loss((r1, r2)[which], s).backward()
        grads.append([p.grad.clone() for p in net.decoder.parameters()])
    assert det.conflict_cosine_[0] == pytest.approx(_cos(*grads), rel=1e-5, abs=1e-7)
    assert det.conflict_fraction_ == pytest.approx(det.conflict_projected_.mean())
    assert det.conflict_projected_[0] == (det.conflict_cosine_[0] < 0)


def test_conflict_not_measured_without_surgery_or_second_encoder() -> None:
    cube, _ = make_scene(seed=2)
    for off in ({"gradient_surgery": False}, {"dual_encoder": False}):
        det = ssmad.create_model("acmamba", **{**FAST, **off}).fit(cube)
        assert np.isnan(det.conflict_cosine_).all() and math.isnan(det.conflict_fraction_)
        assert det.diagnostics_["conflict_fraction"] is None


# -- region homogeneity ----------------------------------------------------------------------------------------------
def _numpy_ratio(cube: np.ndarray, labels: np.ndarray) -> float:
    x = cube.reshape(-1, cube.shape[-1]).astype(np.float64)
    lab = labels.reshape(-1)
    intra, means = [], []
    for r in range(lab.max() + 1):
        pix = x[lab == r]
        intra.append(np.var(pix, axis=0).mean())
        means.append(pix.mean(axis=0))
    return float(np.mean(intra) / np.var(np.array(means), axis=0).mean())


def test_homogeneity_ratio_equals_a_numpy_computation() -> None:
    rng = np.random.default_rng(0)
    cube = rng.uniform(size=(9, 11, 4))
    labels = (np.arange(9)[:, None] // 3) * 4 + np.arange(11)[None, :] // 3  # 3×4 blocks, edges uneven
    labels[0, 0] = labels.max() + 1  # a one-pixel region
    stats = region_stats(cube, labels)
    assert homogeneity_ratio(stats) == pytest.approx(_numpy_ratio(cube, labels), rel=1e-5)


def _blocks(noise: float, seed: int = 0) -> np.ndarray:
    """A 40×40×6 scene of 4 flat 20×20 materials plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    spectra = rng.uniform(0.1, 0.9, size=(4, 6))
    idx = (np.arange(40)[:, None] // 20) * 2 + np.arange(40)[None, :] // 20
    return spectra[idx] + rng.normal(scale=noise, size=(40, 40, 6))


@pytest.mark.parametrize("noise, warns", [(0.002, False), (0.3, True)])
def test_homogeneity_warning_above_the_threshold_only(noise: float, warns: bool, caplog) -> None:
    cube = _blocks(noise)
    with caplog.at_level(logging.WARNING, logger="ssmad.models.acmamba.detector"):
        det = ssmad.create_model("acmamba", **{**FAST, "psi": 50, "iterations": 1}).fit(cube)
    assert (det.homogeneity_ratio_ > 0.05) == warns
    assert det.homogeneity_ratio_ == pytest.approx(_numpy_ratio(
        (cube - cube.min((0, 1))) / np.ptp(cube, axis=(0, 1)), det.labels_), rel=1e-4)  # fmt: skip
    warned = [r for r in caplog.records if "homogeneity ratio" in r.getMessage()]
    assert bool(warned) == warns
    if warns:
        assert "smaller psi" in warned[0].getMessage()
    assert det.diagnostics_["homogeneity_warning"] == warns


# -- scan directions -------------------------------------------------------------------------------------------------
def test_rsal_directions_switch() -> None:
    cube, _ = make_scene(seed=3)
    maps = {}
    for k in (1, 2):
        a = ssmad.create_model("acmamba", **FAST, rsal_directions=k).fit(cube)
        b = ssmad.create_model("acmamba", **FAST, rsal_directions=k).fit(cube)
        np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)  # deterministic for a seed
        assert a.net_.encoder.blocks[0].rsal.num_sequences == k
        maps[k] = a.decision_scores_
    assert not np.allclose(maps[1], maps[2])


def test_one_direction_rsal_is_the_forward_scan_of_the_two_direction_one() -> None:
    """With one direction, RSAL equals the two-direction layer whose reversed direction contributes nothing."""
    from ssmad.layers.bidirectional import RSAL

    torch.manual_seed(0)
    one = RSAL(6, d_state=4, directions=1, scan_backend="reference").double()
    two = RSAL(6, d_state=4, directions=2, scan_backend="reference").double()
    with torch.no_grad():
        for name, p in one.named_parameters():
            q = dict(two.named_parameters())[name]
            q.copy_(p if p.shape == q.shape else torch.cat([p, p], dim=0)[: q.shape[0]])
        d = one.d_inner
        two.x_proj_weight[1].zero_()  # reversed direction: B = C = 0 and D = 0 → contributes nothing
        two.Ds[d:].zero_()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    torch.testing.assert_close(one(x), two(x))


@pytest.mark.parametrize("bad", [0, 3, True])
def test_rsal_directions_must_be_1_or_2(bad) -> None:
    with pytest.raises(ssmad.errors.ConfigError, match="rsal_directions"):
        ssmad.create_model("acmamba", rsal_directions=bad)


# -- reports ---------------------------------------------------------------------------------------------------------
def test_predict_writes_the_diagnostics_to_json_and_panel(tmp_path: Path) -> None:
    from ssmad.cli._hsi import add_hsi_arguments, diagnostics_caption, run_hsi_predict

    cube, gt = make_scene(seed=1)
    np.save(tmp_path / "scene.npy", cube)
    np.save(tmp_path / "gt.npy", gt.astype(np.uint8))
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--input", "--out", "--run"):
        parser.add_argument(flag)
    add_hsi_arguments(parser)
    argv = ["--model", "acmamba", "--input", str(tmp_path / "scene.npy"), "--gt", str(tmp_path / "gt.npy"),
            "--out", str(tmp_path / "o"), "-o", "iterations=3", "-o", "hidden_dim=8", "-o", "psi=30",
            "--device", "cpu"]  # fmt: skip
    assert run_hsi_predict(parser.parse_args(argv)) == 0
    diag = json.loads((tmp_path / "o" / "scene.json").read_text())["diagnostics"]
    det = ssmad.create_model("acmamba", iterations=3, hidden_dim=8, psi=30, device="cpu").fit(cube)
    assert diag["homogeneity_ratio"] == pytest.approx(det.homogeneity_ratio_)
    assert diag["conflict_cosine"] == pytest.approx(list(det.conflict_cosine_))
    assert diag["n_regions"] == det.n_regions_ and diag["rsal_directions"] == 2
    caption = diagnostics_caption(diag)
    assert f"{det.n_regions_} regions" in caption and "homogeneity" in caption and "gradient conflict" in caption
    assert (tmp_path / "o" / "scene.png").stat().st_size > 0
