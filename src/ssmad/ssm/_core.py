"""What every fast backend shares: input checks, dtype handling and the elementwise pre/post steps.

A fast backend only implements the *core* recurrence as a :class:`torch.autograd.Function`::

    core(u, dt, A, B, C, D, want_last) -> (y, last_state)
        u, dt: (batch, D, L)    A: (D, N)    B, C: (batch, G, N, L)    D: (D,) or None
        y_t = <C_t, h_t> + D * u_t,   h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t
        last_state: (batch, D, N), or None when ``want_last`` is False

with its own backward. The bias, softplus and ``silu(z)`` gate around it are plain differentiable torch
operations, so their gradients come from autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from .reference import compute_dtype
from .softplus import softplus

CoreFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, "Tensor | None", bool], "tuple[Tensor, Tensor | None]"]


def check_shapes(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
) -> None:
    """Raise ``ValueError`` with a precise message when the shapes do not fit the selective-scan contract."""
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, D, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if tuple(delta.shape) != (batch, dim, length):
        raise ValueError(f"selective_scan: delta must have the shape of u {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be (D, N) = ({dim}, N), got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (real A only)")
    dstate = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 3:
            ok = tuple(t.shape) == (batch, dstate, length)
        elif t.dim() == 4:
            ok = t.shape[0] == batch and tuple(t.shape[2:]) == (dstate, length) and dim % t.shape[1] == 0
        else:
            ok = False
        if not ok:
            raise ValueError(
                f"selective_scan: {name} must be (batch, N, L) = ({batch}, {dstate}, {length}) or grouped "
                f"(batch, G, N, L) with G dividing D = {dim}; got {tuple(t.shape)}"
            )
    if B.dim() == 4 and C.dim() == 4 and B.shape[1] != C.shape[1]:
        raise ValueError(
            f"selective_scan: B and C must have the same number of groups, got {B.shape[1]} and {C.shape[1]}"
        )
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and tuple(t.shape) != (dim,):
            raise ValueError(f"selective_scan: {name} must be ({dim},), got {tuple(t.shape)}")
    if z is not None and tuple(z.shape) != (batch, dim, length):
        raise ValueError(f"selective_scan: z must have the shape of u {tuple(u.shape)}, got {tuple(z.shape)}")


def as_grouped(t: Tensor) -> Tensor:
    """View ``(batch, N, L)`` as ``(batch, 1, N, L)``; grouped tensors pass through."""
    return rearrange(t, "b n l -> b 1 n l") if t.dim() == 3 else t


def scan_with_core(
    core: CoreFn,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    return_last_state: bool,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run the full selective-scan contract around a backend's core recurrence.

    Args:
        core: The backend's core function (see the module docstring).
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state: As in
            :func:`ssmad.ssm.selective_scan`.

    Returns:
        As :func:`ssmad.ssm.selective_scan`.
    """
    dtype_in = u.dtype
    cdt = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    dt = delta.to(cdt)
    if delta_bias is not None:
        dt = dt + rearrange(delta_bias.to(cdt), "d -> d 1")
    if delta_softplus:
        dt = softplus(dt)
    y, last = core(
        u.to(cdt),
        dt,
        A.to(cdt),
        as_grouped(B).to(cdt),
        as_grouped(C).to(cdt),
        None if D is None else D.to(cdt),
        return_last_state,
    )
    if z is not None:
        y = y * F.silu(z.to(cdt))
    out = y.to(dtype_in)
    if return_last_state:
        assert last is not None
        return out, last
    return out


def needs_grad(*tensors: Tensor | None) -> bool:
    """True when autograd will want a gradient for any of these tensors."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
