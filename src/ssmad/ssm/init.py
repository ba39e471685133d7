"""Mamba's initialisers for the selective-SSM parameters (spec D.3), shared by SS2D and RSAL.

* ``A_log[d, n] = log(n + 1)`` for every channel ``d`` (S4D-Real), so ``A = -exp(A_log) = -[1, 2, …, N]``.
* ``D = 1``.
* The step-size projection ``dt_proj`` (``dt_rank → d_inner``): weight ``U(-σ, σ)`` with
  ``σ = dt_rank^-1/2 · dt_scale`` (``"random"``) or the constant ``σ`` (``"constant"``); bias
  ``softplus⁻¹(dt)`` with ``dt = exp(U(log dt_min, log dt_max))`` clamped to at least ``dt_init_floor``, so the
  initial step sizes ``softplus(bias)`` are log-uniform in ``[dt_min, dt_max]``.

``A_log`` and ``D`` carry ``_no_weight_decay = True`` and the dt bias ``_no_reinit = True``, as in mamba-ssm, so
optimiser grouping and model-wide re-initialisation can recognise them. Functions taking ``copies`` build the
per-direction stacks of multi-direction layers: ``copies`` blocks of ``d_inner`` rows, merged into one leading
dimension by default (the layout the grouped selective scan expects).
"""

from __future__ import annotations

import math

import torch
from einops import repeat
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "a_log_init",
    "d_init",
    "dt_bias_init",
    "dt_proj_init",
    "dt_weight_init_",
    "inverse_softplus",
    "x_proj_weight_init",
]

DT_INIT_MODES = ("random", "constant")


def inverse_softplus(x: Tensor) -> Tensor:
    """Inverse of ``softplus`` for positive ``x``: ``x + log(-expm1(-x))`` (numerically stable form)."""
    return x + torch.log(-torch.expm1(-x))


def a_log_init(
    d_state: int, d_inner: int, copies: int = 1, merge: bool = True, device: torch.device | str | None = None
) -> nn.Parameter:
    """S4D-Real initialisation of ``A_log`` (float32).

    Args:
        d_state: State size N.
        d_inner: Channels per copy.
        copies: Number of stacked copies (directions).
        merge: Merge the copies into the channel dimension.

    Returns:
        Parameter of shape ``(d_inner, N)`` for one copy, ``(copies * d_inner, N)`` merged, or
        ``(copies, d_inner, N)`` unmerged; flagged ``_no_weight_decay``.
    """
    a = repeat(torch.arange(1, d_state + 1, dtype=torch.float32, device=device), "n -> d n", d=d_inner)
    a_log = torch.log(a)
    if copies > 1:
        a_log = repeat(a_log, "d n -> r d n", r=copies)
        if merge:
            a_log = a_log.flatten(0, 1)
    param = nn.Parameter(a_log.contiguous())
    param._no_weight_decay = True  # type: ignore[attr-defined]
    return param


def d_init(d_inner: int, copies: int = 1, merge: bool = True, device: torch.device | str | None = None) -> nn.Parameter:
    """Skip parameter ``D = 1`` (float32).

    Returns:
        Parameter of shape ``(d_inner,)``, ``(copies * d_inner,)`` merged or ``(copies, d_inner)`` unmerged;
        flagged ``_no_weight_decay``.
    """
    d = torch.ones(d_inner, device=device)
    if copies > 1:
        d = repeat(d, "d -> r d", r=copies)
        if merge:
            d = d.flatten(0, 1)
    param = nn.Parameter(d.contiguous())
    param._no_weight_decay = True  # type: ignore[attr-defined]
    return param


def dt_weight_init_(weight: Tensor, dt_rank: int, dt_scale: float = 1.0, dt_init: str = "random") -> Tensor:
    """Fill a ``dt_proj`` weight in place: ``U(-σ, σ)`` (``"random"``) or ``σ`` (``"constant"``).

    Args:
        weight: Weight(s) of any shape, e.g. ``(d_inner, dt_rank)`` or stacked ``(K, d_inner, dt_rank)``.
        dt_rank: Rank R of the step-size projection (its fan-in).
        dt_scale: Multiplier of ``σ = dt_rank^-1/2``.
        dt_init: ``"random"`` or ``"constant"``.

    Returns:
        ``weight``.

    Raises:
        ConfigError: Unknown ``dt_init``.
    """
    std = dt_rank**-0.5 * dt_scale
    with torch.no_grad():
        if dt_init == "constant":
            return weight.fill_(std)
        if dt_init == "random":
            return weight.uniform_(-std, std)
    raise ConfigError(f"dt_init={dt_init!r} is not supported: choose one of {', '.join(DT_INIT_MODES)}.")


def dt_bias_init(
    d_inner: int,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    dt_init_floor: float = 1e-4,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Bias of ``dt_proj`` such that ``softplus(bias)`` is log-uniform in ``[dt_min, dt_max]``.

    Args:
        d_inner: Channels per copy.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init_floor: Lower clamp of the sampled step sizes.
        generator: Optional random generator.

    Returns:
        Bias of shape ``(d_inner,)`` (float32); draw ``K * d_inner`` values and reshape for K stacked copies.

    Raises:
        ConfigError: ``dt_min``/``dt_max`` not positive and ordered.
    """
    if not 0 < dt_min <= dt_max:
        raise ConfigError(f"need 0 < dt_min <= dt_max for the step-size init, got dt_min={dt_min}, dt_max={dt_max}.")
    u = torch.rand(d_inner, device=device, generator=generator)
    dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_init_floor)
    return inverse_softplus(dt)


def dt_proj_init(
    dt_rank: int,
    d_inner: int,
    dt_scale: float = 1.0,
    dt_init: str = "random",
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    dt_init_floor: float = 1e-4,
    device: torch.device | str | None = None,
) -> nn.Linear:
    """A Mamba step-size projection ``Linear(dt_rank → d_inner)`` with the special weight and bias init.

    Returns:
        The layer; its bias is flagged ``_no_reinit``.
    """
    proj = nn.Linear(dt_rank, d_inner, bias=True, device=device)
    dt_weight_init_(proj.weight, dt_rank, dt_scale, dt_init)
    with torch.no_grad():
        proj.bias.copy_(dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor, device=device))
    proj.bias._no_reinit = True  # type: ignore[attr-defined]
    return proj


def x_proj_weight_init(
    out_features: int, in_features: int, copies: int = 1, device: torch.device | str | None = None
) -> Tensor:
    """Weights of the (bias-free) ``x_proj`` with PyTorch's default ``nn.Linear`` init, one per copy.

    ``nn.Linear`` draws ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` (Kaiming-uniform with ``a = sqrt(5)``);
    MambaAD and ACMamba build ``x_proj`` from such layers and keep that init.

    Returns:
        Tensor of shape ``(copies, out_features, in_features)``.
    """
    bound = 1.0 / math.sqrt(in_features)
    return torch.empty(copies, out_features, in_features, device=device).uniform_(-bound, bound)
