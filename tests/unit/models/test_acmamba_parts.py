"""ACMamba's pieces against independent oracles: region statistics, samples, PCGrad, masking counts, network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssmad.errors import ConfigError, InputError
from ssmad.models.acmamba import ACMambaConfig, ACMambaNet
from ssmad.models.acmamba.pcgrad import pcgrad_backward, project_conflicting
from ssmad.models.acmamba.superpixels import (
    n_segments_for,
    pixel_regions,
    region_stats,
    representative_samples,
    slic_regions,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP barrier stalls on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- region statistics --------------------------------------------------------------------------------------------
def test_region_stats_match_a_loop_over_regions() -> None:
    rng = np.random.default_rng(0)
    cube = rng.random((9, 11, 4))
    labels = rng.integers(0, 7, size=(9, 11))
    labels[0, 0] = 7  # a one-pixel region
    stats = region_stats(cube, labels)
    assert stats.n_regions == 8
    for r in range(8):
        px = cube[labels == r]
        np.testing.assert_allclose(stats.mean[r], px.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats.min[r], px.min(0), rtol=1e-6)
        np.testing.assert_allclose(stats.max[r], px.max(0), rtol=1e-6)
        expected_std = np.zeros(4) if len(px) == 1 else torch.from_numpy(px).std(0).numpy()  # torch: unbiased
        np.testing.assert_allclose(stats.std[r], expected_std, rtol=1e-5, atol=1e-7)
        assert stats.counts[r] == len(px)


def test_region_stats_reject_gaps_in_labels() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        region_stats(np.zeros((2, 2, 3)), np.array([[0, 0], [2, 2]]))


def test_slic_regions_call_and_relabel(monkeypatch: pytest.MonkeyPatch) -> None:
    import skimage.segmentation

    seen = {}

    def fake_slic(image: np.ndarray, **kwargs: object) -> np.ndarray:
        seen.update(kwargs, dtype=image.dtype)
        out = np.full(image.shape[:2], 3)
        out[:, 5:] = 9  # labels with gaps: 3 and 9
        return out

    monkeypatch.setattr(skimage.segmentation, "slic", fake_slic)
    labels = slic_regions(np.zeros((31, 40, 5)), psi=150)
    assert seen["n_segments"] == math.floor(31 * 40 / 150)
    assert (seen["compactness"], seen["sigma"], seen["channel_axis"], seen["convert2lab"]) == (1.0, 0.5, -1, False)
    assert seen["max_num_iter"] == 10
    assert seen["dtype"] == np.float32  # the official code segments its float32 normalised cube
    assert set(np.unique(labels)) == {0, 1} and (labels[:, :5] == 0).all()


def test_real_slic_gives_about_hw_over_psi_regions() -> None:
    rng = np.random.default_rng(1)
    cube = rng.random((40, 45, 6)).astype(np.float32)
    labels = slic_regions(cube, psi=30)
    n = labels.max() + 1
    assert set(np.unique(labels)) == set(range(n))
    assert 0.3 * (40 * 45 / 30) <= n <= 1.5 * (40 * 45 / 30)


def test_fewer_pixels_than_psi_is_an_input_error() -> None:
    with pytest.raises(InputError, match="fewer than the 150 pixels"):
        n_segments_for(10, 12, 150)
    assert n_segments_for(10, 15, 150) == 1


def test_pixel_regions_are_raster_order() -> None:
    np.testing.assert_array_equal(pixel_regions(2, 3), [[0, 1, 2], [3, 4, 5]])


# -- representative samples ----------------------------------------------------------------------------------------
def test_representative_samples_one_draw_per_region_within_bounds() -> None:
    g = torch.Generator().manual_seed(0)
    n, b = 500, 6
    mean = torch.rand(1, n, b)
    std = torch.rand(1, n, b) * 0.1 + 0.01
    lo, hi = mean - 10, mean + 10  # wide bounds: nothing is clamped
    s = representative_samples(mean, std, lo, hi, scale=2.0, generator=g)
    u = (s - mean) / (2 * std)
    assert torch.allclose(u, u[..., :1].expand_as(u), atol=1e-5)  # one u per region, shared by bands
    assert u.min() >= -1 and u.max() <= 1
    assert abs(float(u.mean())) < 0.1 and float(u.std()) == pytest.approx(1 / math.sqrt(3), abs=0.05)  # U(-1, 1)
    tight = representative_samples(mean, std, mean - 0.001, mean + 0.002, generator=g)
    assert ((tight >= mean - 0.001 - 1e-7) & (tight <= mean + 0.002 + 1e-7)).all()


# -- PCGrad -------------------------------------------------------------------------------------------------------
def test_project_conflicting_hand_computed() -> None:
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    both = [torch.tensor([True, True])] * 2
    # g1·g2 = -1: g1' = g1 + g2/2 = (0.5, 0.5); g2' = g2 + g1 = (0, 1); mean = (0.25, 0.75)
    torch.testing.assert_close(project_conflicting([g1, g2], both), torch.tensor([0.25, 0.75]))
    # no conflict: plain mean on shared entries, sum where only one loss reaches
    a, b = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([3.0, 0.0, 5.0])
    reached = [torch.tensor([True, True, False]), torch.tensor([True, False, True])]
    torch.testing.assert_close(project_conflicting([a, b], reached), torch.tensor([2.0, 2.0, 5.0]))


def test_pcgrad_backward_shared_and_private_parameters() -> None:
    """Two losses, a shared parameter and one private parameter each; expected grads derived by hand."""
    shared = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    p1 = torch.nn.Parameter(torch.tensor([3.0]))
    p2 = torch.nn.Parameter(torch.tensor([-1.0]))
    params = [shared, p1, p2]
    l1 = (shared * torch.tensor([1.0, 0.0])).sum() * p1.sum()  # grad: shared (3, 0), p1 (1)
    l2 = (shared * torch.tensor([-1.0, 1.0])).sum() * p2.sum()  # grad: shared (1, -1), p2 (1)
    pcgrad_backward([l1, l2], params)
    g1 = torch.tensor([3.0, 0.0, 1.0, 0.0])
    g2 = torch.tensor([1.0, -1.0, 0.0, 1.0])
    assert float(g1 @ g2) == 3.0  # no conflict → merge only
    torch.testing.assert_close(shared.grad, (g1[:2] + g2[:2]) / 2)
    torch.testing.assert_close(p1.grad, torch.tensor([1.0]))
    torch.testing.assert_close(p2.grad, torch.tensor([1.0]))

    # conflicting case: flip the sign of l2
    for p in params:
        p.grad = None
    l1 = (shared * torch.tensor([1.0, 0.0])).sum() * p1.sum()
    l2 = -(shared * torch.tensor([-1.0, 1.0])).sum() * p2.sum()
    pcgrad_backward([l1, l2], params)
    g2 = torch.tensor([-1.0, 1.0, 0.0, -1.0])  # d l2: shared -(−1,1)·p2 = (−1, 1); p2: -((−1)+2) = −1
    dot = float(g1 @ g2)
    assert dot < 0
    g1p = g1 - dot / float(g2 @ g2) * g2
    g2p = g2 - dot / float(g1 @ g1) * g1
    torch.testing.assert_close(shared.grad, (g1p[:2] + g2p[:2]) / 2)
    torch.testing.assert_close(p1.grad, (g1p[2:3] + g2p[2:3]))
    torch.testing.assert_close(p2.grad, (g1p[3:] + g2p[3:]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pcgrad_backward_equals_project_conflicting_with_three_losses(seed: int) -> None:
    """Random conflicting gradients of three losses (one parameter shared by all, others by some): the
    coefficient-space projections must give what the readable vector version gives, for the same visiting order."""
    torch.manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.randn(5)),
        torch.nn.Parameter(torch.randn(3)),
        torch.nn.Parameter(torch.randn(4)),
    ]
    directions = [torch.randn(12) for _ in range(3)]
    uses = [(0, 1, 2), (0, 1), (0, 2)]  # which parameters each loss reaches

    def losses() -> list[torch.Tensor]:
        out = []
        for d, used in zip(directions, uses, strict=True):
            pieces = d.split([p.numel() for p in params])
            out.append(sum((params[i] @ pieces[i]) + 0.1 * (params[i] ** 2).sum() for i in used))
        return out

    flat_grads, reached = [], []
    for loss in losses():
        gs = torch.autograd.grad(loss, params, allow_unused=True)
        flat_grads.append(
            torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, gs, strict=True)])
        )
        reached.append(torch.cat([torch.full((p.numel(),), g is not None) for p, g in zip(params, gs, strict=True)]))
    conflicts = sum(float(flat_grads[i] @ flat_grads[j]) < 0 for i in range(3) for j in range(i + 1, 3))
    expected = project_conflicting(flat_grads, reached, torch.Generator().manual_seed(7))
    pcgrad_backward(losses(), params, torch.Generator().manual_seed(7))
    got = torch.cat([p.grad.reshape(-1) for p in params])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert conflicts >= 1  # a projection is exercised
    assert not all(r.all() for r in reached)  # and the sum on parameters some losses do not reach


# -- network ---------------------------------------------------------------------------------------------------------
def test_network_branches_and_average() -> None:
    torch.manual_seed(0)
    net = ACMambaNet(7, hidden_dim=16, scan_backend="reference").eval()
    x = torch.rand(1, 12, 7)
    mask = torch.ones(1, 12, 1)
    mask[0, [2, 5]] = 0
    r1, r2 = net.branches(x, mask)
    torch.testing.assert_close(r1, net.decoder(net.encoder(x)))
    torch.testing.assert_close(r2, net.decoder(net.region_encoder(x * mask)))
    torch.testing.assert_close(net(x), (net.decoder(net.encoder(x)) + net.decoder(net.region_encoder(x))) / 2)
    single = ACMambaNet(7, hidden_dim=16, dual_encoder=False, scan_backend="reference").eval()
    assert single.region_encoder is None
    torch.testing.assert_close(single(x), single.decoder(single.encoder(x)))


def test_parameter_count_matches_spec() -> None:
    """Spec C.4 [calc]: ≈1.45 M parameters for 205 bands and ≈1.03 M for 46 bands."""
    count = sum(p.numel() for p in ACMambaNet(205).parameters())
    assert count == pytest.approx(1.45e6, rel=0.02)
    assert sum(p.numel() for p in ACMambaNet(46).parameters()) == pytest.approx(1.03e6, rel=0.02)


# -- config ----------------------------------------------------------------------------------------------------------
def test_config_defaults_are_the_official_ones() -> None:
    c = ACMambaConfig()
    assert (c.psi, c.compactness, c.sigma, c.hidden_dim, c.d_state, c.iterations) == (150, 1, 0.5, 256, 16, 100)
    assert (c.lr, c.betas, c.weight_decay, c.mask_ratio, c.sample_scale) == (5e-4, (0.9, 0.99), 5e-4, 0.01, 2.0)
    assert (c.training, c.dual_encoder, c.masking, c.rx_fusion, c.mask_min_regions) == ("region", True, True, True, 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"training": "patch"}, {"iterations": 0}, {"psi": -1}, {"d_conv": 4}, {"device": "tpu"}, {"masking": 1}],
)
def test_config_rejects_bad_values(kwargs: dict) -> None:
    import ssmad

    with pytest.raises(ConfigError):
        ssmad.create_model("acmamba", **kwargs)
