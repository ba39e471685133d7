"""DropPath: identity in eval mode, whole samples kept (scaled by 1/keep) or zeroed while training."""

import pytest
import torch

from ssmad.layers.droppath import DropPath


def test_eval_mode_and_zero_rate_are_identity() -> None:
    x = torch.randn(4, 3, 5)
    assert torch.equal(DropPath(0.3).eval()(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_training_keeps_or_drops_whole_samples_with_the_right_rate() -> None:
    torch.manual_seed(0)
    p = 0.25
    x = torch.rand(20000, 2, 3) + 0.5  # strictly positive, so a zero can only come from the mask
    y = DropPath(p).train()(x)
    ratio = y / x
    per_sample = ratio.flatten(1)
    # every sample is either dropped entirely or kept entirely with the 1 / (1 - p) scale
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample))
    kept = per_sample[:, 0][per_sample[:, 0] != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))
    dropped = (per_sample[:, 0] == 0).float().mean().item()
    assert abs(dropped - p) < 0.015  # binomial sd ~ 0.003
    assert abs(y.mean().item() - x.mean().item()) < 0.02  # unbiased in expectation


def test_gradient_flows_only_through_kept_samples() -> None:
    x = torch.ones(64, 4, requires_grad=True)
    torch.manual_seed(1)
    y = DropPath(0.5).train()(x)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(mask * x / keep)/dx = mask / keep = y for x = 1


def test_rate_one_drops_every_sample() -> None:
    x = torch.randn(5, 3)
    assert torch.equal(DropPath(1.0).train()(x), torch.zeros_like(x))


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rejects_rates_outside_zero_one(rate: float) -> None:
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(rate)
