"""Mamba initialisers (spec D.3), on their own and inside SS2D / RSAL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from ssmad.errors import ConfigError
from ssmad.layers import RSAL, SS2D
from ssmad.ssm.init import (
    a_log_init,
    d_init,
    dt_bias_init,
    dt_proj_init,
    dt_weight_init_,
    inverse_softplus,
    x_proj_weight_init,
)


def test_a_log_gives_minus_one_to_n() -> None:
    a_log = a_log_init(5, 3)
    assert a_log.shape == (3, 5) and a_log.dtype == torch.float32
    torch.testing.assert_close(-torch.exp(a_log), -torch.arange(1.0, 6.0).expand(3, 5))
    assert a_log._no_weight_decay
    merged = a_log_init(5, 3, copies=4)
    assert merged.shape == (12, 5)
    torch.testing.assert_close(merged, torch.log(torch.arange(1.0, 6.0)).expand(12, 5))
    assert a_log_init(5, 3, copies=4, merge=False).shape == (4, 3, 5)


def test_d_is_ones() -> None:
    d = d_init(7, copies=2)
    assert d.shape == (14,) and d._no_weight_decay
    torch.testing.assert_close(d, torch.ones(14))
    assert d_init(7, copies=2, merge=False).shape == (2, 7)


def test_inverse_softplus_inverts_softplus() -> None:
    x = torch.logspace(-5, 1.3, 200, dtype=torch.float64)
    torch.testing.assert_close(F.softplus(inverse_softplus(x)), x)


def test_dt_bias_softplus_is_log_uniform_in_range() -> None:
    dt_min, dt_max = 0.001, 0.1
    dt = F.softplus(dt_bias_init(20000, dt_min, dt_max, 1e-4).double())
    assert dt.min() >= dt_min * (1 - 1e-4) and dt.max() <= dt_max * (1 + 1e-4)
    unit = (torch.log(dt) - math.log(dt_min)) / (math.log(dt_max) - math.log(dt_min))
    assert stats.kstest(unit.numpy(), "uniform").pvalue > 1e-3


def test_dt_bias_floor_clamps_small_steps() -> None:
    dt = F.softplus(dt_bias_init(5000, 1e-6, 1e-3, dt_init_floor=1e-4).double())
    assert dt.min() >= 1e-4 * (1 - 1e-3)
    assert (torch.isclose(dt, torch.full_like(dt, 1e-4), rtol=1e-3)).float().mean() > 0.5  # 2 of 3 decades clamped
    with pytest.raises(ConfigError):
        dt_bias_init(4, dt_min=0.1, dt_max=0.01)


def test_dt_weight_random_and_constant() -> None:
    rank, scale = 4, 1.5
    sigma = rank**-0.5 * scale
    w = dt_weight_init_(torch.empty(64, 200, rank), rank, scale, "random")
    assert w.abs().max() <= sigma
    assert w.abs().max() > 0.99 * sigma and abs(w.mean().item()) < 0.01
    assert stats.kstest(((w.flatten() + sigma) / (2 * sigma)).numpy(), "uniform").pvalue > 1e-3
    torch.testing.assert_close(dt_weight_init_(torch.empty(3, 2), rank, scale, "constant"), torch.full((3, 2), sigma))
    with pytest.raises(ConfigError):
        dt_weight_init_(torch.empty(3, 2), rank, scale, "xavier")


def test_dt_proj_layer() -> None:
    proj = dt_proj_init(8, 300, dt_min=0.002, dt_max=0.05)
    assert proj.weight.shape == (300, 8) and proj.bias._no_reinit
    assert proj.weight.abs().max() <= 8**-0.5
    dt = F.softplus(proj.bias.detach())
    assert dt.min() >= 0.002 * (1 - 1e-4) and dt.max() <= 0.05 * (1 + 1e-4)


def test_x_proj_weight_matches_linear_default_bound() -> None:
    w = x_proj_weight_init(36, 128, copies=8)
    assert w.shape == (8, 36, 128)
    bound = 1 / math.sqrt(128)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    ref = torch.nn.Linear(128, 36, bias=False).weight  # PyTorch's own default init, same distribution
    assert abs(w.std().item() - ref.std().item()) < 0.1 * ref.std().item()


@pytest.mark.parametrize("make", [lambda: SS2D(48, d_state=6, num_directions=4), lambda: RSAL(48, d_state=6)])
def test_layer_ssm_parameters_start_as_mamba(make) -> None:
    m = make()
    k, d_inner, rank = m.num_sequences, 96, 3  # dt_rank auto = ceil(48 / 16)
    assert m.dt_rank == rank
    assert m.x_proj_weight.shape == (k, rank + 12, d_inner)
    assert m.dt_projs_weight.shape == (k, d_inner, rank) and m.dt_projs_bias.shape == (k, d_inner)
    torch.testing.assert_close(-torch.exp(m.A_logs), -torch.arange(1.0, 7.0).expand(k * d_inner, 6))
    torch.testing.assert_close(m.Ds, torch.ones(k * d_inner))
    assert m.dt_projs_weight.abs().max() <= rank**-0.5
    dt = F.softplus(m.dt_projs_bias.detach())
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    assert m.dt_projs_bias._no_reinit and m.A_logs._no_weight_decay and m.Ds._no_weight_decay
    # the K directions are independent draws
    assert not np.allclose(m.x_proj_weight[0].detach(), m.x_proj_weight[1].detach())
