"""The sequential selective scan: the readable oracle every faster backend is tested against.

Semantics are those of mamba-ssm's ``selective_scan_ref`` (real ``A``, input-dependent ``B``/``C``)::

    dt_t   = softplus(delta_t + delta_bias)          (bias and softplus optional)
    h_t    = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t
    y_t    = <C_t, h_t> + D * u_t
    out_t  = y_t * silu(z_t)                         (gate optional)

One difference on purpose: mamba-ssm always computes in float32, which makes a float64 ``gradcheck``
impossible. Here the recurrence runs in float32 for float16/bfloat16/float32 inputs and in float64 when any
input is float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor


def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """Return the recurrence dtype for these inputs: float64 if any is float64, else float32."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan, one time step after the other.

    Args:
        u: Input sequence, shape ``(batch, D, L)``.
        delta: Step sizes before bias/softplus, shape ``(batch, D, L)``.
        A: State matrix (diagonal per channel, real), shape ``(D, N)``.
        B: Input projections, shape ``(batch, N, L)`` or grouped ``(batch, G, N, L)``; group ``g`` serves the
            ``D / G`` consecutive channels ``[g * D / G, (g + 1) * D / G)``.
        C: Output projections, same shape rules as ``B``.
        D: Skip connection, shape ``(D,)``.
        z: Gate, shape ``(batch, D, L)``; the output is multiplied by ``silu(z)``.
        delta_bias: Added to ``delta``, shape ``(D,)``.
        delta_softplus: Apply softplus to ``delta`` (after the bias).
        return_last_state: Also return the state after the last step.

    Returns:
        ``out`` of shape ``(batch, D, L)`` in the dtype of ``u``, and, when asked, the last state of shape
        ``(batch, D, N)`` in the recurrence dtype.
    """
    dtype_in = u.dtype
    cdt = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    u, delta, A, B, C = (t.to(cdt) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + rearrange(delta_bias.to(cdt), "d -> d 1")
    if delta_softplus:
        delta = F.softplus(delta)

    batch, dim, length = u.shape
    if B.dim() == 3:
        B = rearrange(B, "b n l -> b 1 n l")
    if C.dim() == 3:
        C = rearrange(C, "b n l -> b 1 n l")
    B = repeat(B, "b g n l -> b (g h) n l", h=dim // B.shape[1])
    C = repeat(C, "b g n l -> b (g h) n l", h=dim // C.shape[1])

    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    drive = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    state = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        state = decay[:, :, t] * state + drive[:, :, t]
        ys.append(torch.einsum("bdn,bdn->bd", state, C[:, :, :, t]))
    y = torch.stack(ys, dim=2)

    out = y if D is None else y + u * rearrange(D.to(cdt), "d -> d 1")
    if z is not None:
        out = out * F.silu(z.to(cdt))
    out = out.to(dtype_in)
    return (out, state) if return_last_state else out
