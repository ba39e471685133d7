r"""Mamba-3 elements on top of the SSD scan, as functional switches: the trapezoid rule and the rotary state.

**Exponential-trapezoidal discretisation** (``ssd_scan(..., trapezoid_lambda=λ)``). Mamba-3 replaces the
Euler-like input term ``dt_t x_t B_tᵀ`` by a trapezoid between the previous and the current input::

    h_t = α_t h_{t-1} + β_t u_{t-1} + γ_t u_t,   u_t = x_t B_tᵀ,
    α_t = exp(dt_t A),  γ_t = λ_t dt_t,  β_t = (1 - λ_t) dt_t α_t,   λ_t ∈ [0, 1] data-dependent, u_{-1} = 0.

It is exactly an SSD scan over a modified input weight plus a diagonal output correction, so it runs through the
same chunked fast path. With ``c_t = (1 - λ_t) dt_t`` (so ``β_t = c_t α_t``) and ``c_L = 0``, define
``g_t = h_t + c_{t+1} u_t``. Then::

    h_{t+1} = α_{t+1} (h_t + c_{t+1} u_t) + γ_{t+1} u_{t+1} = α_{t+1} g_t + γ_{t+1} u_{t+1}
    g_{t+1} = h_{t+1} + c_{t+2} u_{t+1} = α_{t+1} g_t + (γ_{t+1} + c_{t+2}) u_{t+1}

so ``g`` is the plain SSD recurrence with the same decays ``α`` and input weights
``w_t = λ_t dt_t + (1 - λ_{t+1}) dt_{t+1}`` (:func:`trapezoid_weights`), starting from ``g_{-1} = h_{-1}``.
The outputs follow from ``h_t = g_t - c_{t+1} u_t``::

    y_t = h_t C_t = g_t C_t - c_{t+1} (C_t · B_t) x_t,

a per-step correction on the diagonal of ``C Bᵀ``; the final state is ``h_{L-1} = g_{L-1}`` because ``c_L = 0``.
``λ = 1`` gives back the Mamba-2 rule.

**Data-dependent rotary state** (:func:`ssd_rotary`). Mamba-3's complex-valued state: each pair ``k`` of state
dimensions ``(2k, 2k+1)`` is a complex number that, besides decaying, turns by a data-dependent angle
``θ_{t,k}`` at every step. Written with real 2×2 rotations ``R(φ)`` acting on each pair of the state rows::

    h_t = exp(dt_t A) R(θ_t) h_{t-1} + dt_t x_t B_tᵀ,   y_t = h_t C_t        (R acts on the N axis of h)

Unrolled, ``y_t = Σ_{s≤t} (Π decays) dt_s x_s (R(Φ_t - Φ_s) B_s) · C_t`` with ``Φ_t = Σ_{s≤t} θ_s``. Rotations
are orthogonal and compose, ``R(Φ_t - Φ_s) = R(-Φ_t)ᵀ R(-Φ_s)``, hence
``(R(Φ_t - Φ_s) B_s) · C_t = (R(-Φ_s) B_s) · (R(-Φ_t) C_t)``: the rotating scan equals the ordinary real SSD scan
with ``B_t`` and ``C_t`` rotated by ``-Φ_t`` beforehand, which is all :func:`ssd_rotary` does. The scan's state
is then ``ĥ_t = R(-Φ_t) h_t`` (the same at ``t = -1``, so initial states need no change); turn a final state back
with ``rotate_pairs(state, Φ_{L-1})``. Because angles are per head, rotated ``B``/``C`` have one group per angle
head (``G = H`` for per-head angles). In complex numbers (pair ``k`` as ``b_{2k} + i b_{2k+1}``) this is the
diagonal state ``h_t = exp(dt_t A + i θ_t) h_{t-1} + dt_t x_t B_t`` read out as ``y_t = Re(h_t · conj(C_t))``.

RMSNorm on ``B``/``C`` (Mamba-3's third element) is an ordinary normalisation layer and lives in the block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from ..errors import InputError
from .reference import compute_dtype


def trapezoid_weights(dt: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
    """Input weights and diagonal correction of the trapezoid rule as a plain SSD scan (module docstring).

    Args:
        dt: Step sizes after bias/softplus ``(b, L, H)``.
        lam: Trapezoid weights ``λ`` ``(b, L, H)``.

    Returns:
        ``w`` ``(b, L, H)`` with ``w_t = λ_t dt_t + (1 - λ_{t+1}) dt_{t+1}`` and ``c_next`` ``(b, L, H)`` with
        ``c_next_t = (1 - λ_{t+1}) dt_{t+1}`` (0 at the last step); ``y_t`` of the plain scan with weights ``w``
        minus ``c_next_t (C_t · B_t) x_t`` is the trapezoid output.
    """
    c_next = F.pad(((1 - lam) * dt)[:, 1:], (0, 0, 0, 1))
    return lam * dt + c_next, c_next


def rotate_pairs(t: Tensor, angle: Tensor) -> Tensor:
    """Rotate each pair ``(2k, 2k+1)`` of the last axis of ``t`` by ``angle[..., k]`` (counter-clockwise).

    Args:
        t: ``(..., N)`` with ``N`` even.
        angle: ``(..., N / 2)``, broadcastable against ``t``'s leading axes.

    Returns:
        ``(..., N)``: ``(cos φ t_{2k} - sin φ t_{2k+1}, sin φ t_{2k} + cos φ t_{2k+1})``, i.e. ``R(φ)`` applied.
    """
    pairs = rearrange(t, "... (k two) -> ... k two", two=2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    first = cos * pairs[..., 0] - sin * pairs[..., 1]
    second = sin * pairs[..., 0] + cos * pairs[..., 1]
    return rearrange(torch.stack([first, second], dim=-1), "... k two -> ... (k two)")


def ssd_rotary(B: Tensor, C: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate ``B`` and ``C`` so that a plain SSD scan computes Mamba-3's data-dependent rotating state.

    ``B_t`` and ``C_t`` are rotated pair-wise by ``-Φ_t`` with ``Φ_t = Σ_{s≤t} θ_s`` (cumulative over the
    sequence); ``ssd_scan(x, dt, A, *ssd_rotary(B, C, theta))`` then equals the complex-diagonal-state recurrence
    of the module docstring exactly (up to rounding).

    Args:
        B: ``(b, L, G, N)``, ``N`` even.
        C: ``(b, L, G, N)``.
        theta: Angle increments ``(b, L, K, N / 2)`` per step; ``K`` (the angle heads, usually ``H``) must be a
            multiple of ``G``; group ``g`` of ``B``/``C`` is repeated for its ``K / G`` angle heads.

    Returns:
        Rotated ``B`` and ``C``, ``(b, L, K, N)``, in the recurrence dtype (float32, float64 for float64 inputs).

    Raises:
        InputError: Shapes that do not fit.
    """
    if B.dim() != 4 or tuple(B.shape) != tuple(C.shape):
        raise InputError(f"ssd_rotary: B and C must both be (b, L, G, N), got {tuple(B.shape)} and {tuple(C.shape)}")
    batch, length, groups, dstate = B.shape
    if dstate % 2:
        raise InputError(f"ssd_rotary: the state size N must be even (pairs of dims rotate), got N = {dstate}")
    if (
        theta.dim() != 4
        or tuple(theta.shape[:2]) != (batch, length)
        or theta.shape[3] != dstate // 2
        or theta.shape[2] % groups
    ):
        raise InputError(
            f"ssd_rotary: theta must be (b, L, K, N/2) = ({batch}, {length}, K, {dstate // 2}) with K a multiple of "
            f"G = {groups}, got {tuple(theta.shape)}"
        )
    cdt = compute_dtype(B, C, theta)
    r = theta.shape[2] // groups
    phi = -torch.cumsum(theta.to(cdt), dim=1)
    Bk = repeat(B.to(cdt), "b l g n -> b l (g r) n", r=r)
    Ck = repeat(C.to(cdt), "b l g n -> b l (g r) n", r=r)
    return rotate_pairs(Bk, phi), rotate_pairs(Ck, phi)
