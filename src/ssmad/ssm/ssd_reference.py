"""The sequential SSD scan (Mamba-2): the readable oracle the chunked fast path is tested against.

Shapes and meaning are those of mamba-ssm's ``mamba_chunk_scan_combined``; heads ``h`` share one scalar decay
per step, groups of ``H / G`` consecutive heads share ``B`` and ``C``::

    dt_t  = softplus(dt_t + dt_bias)                         (bias and softplus optional)   (b, L, H)
    h_t   = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_tᵀ                                        (b, H, P, N)
    y_t   = h_t C_t + D * x_t                                                                 (b, H, P)
    out_t = y_t * silu(z_t)                                   (gate optional)

With ``trapezoid_lambda`` (the Mamba-3 exponential-trapezoidal rule, :mod:`ssmad.ssm.ssd_mamba3`) the state
update becomes ``h_t = α_t h_{t-1} + β_t x_{t-1} B_{t-1}ᵀ + γ_t x_t B_tᵀ`` with ``α_t = exp(dt_t A)``,
``γ_t = λ_t dt_t`` and ``β_t = (1 - λ_t) dt_t α_t`` (no previous term at ``t = 0``); ``λ = 1`` is the rule above.

The recurrence runs in float32 for float16/bfloat16/float32 inputs and in float64 when any input is float64,
so that float64 ``gradcheck`` works; ``y`` comes back in the dtype of ``x``, the final state in the recurrence
dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from ..errors import InputError
from .reference import compute_dtype


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_ssd_inputs(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    initial_states: Tensor | None = None,
    trapezoid_lambda: Tensor | None = None,
    chunk_size: int = 64,
) -> None:
    """Raise :class:`~ssmad.errors.InputError` naming the argument, its expected and actual shape.

    ``A`` must be real and non-positive (a decay); the value check is skipped while ``torch.compile`` traces.
    """
    if x.dim() != 4:
        raise InputError(f"ssd_scan: x must be (batch, L, H, P), got shape {_shape(x)}")
    batch, length, heads, headdim = x.shape
    if dt.dim() != 3 or _shape(dt) != (batch, length, heads):
        raise InputError(f"ssd_scan: dt must be (batch, L, H) = {(batch, length, heads)}, got {_shape(dt)}")
    if A.dim() != 1 or A.shape[0] != heads:
        raise InputError(f"ssd_scan: A must be (H,) = ({heads},) (one scalar decay per head), got {_shape(A)}")
    if A.is_complex():
        raise InputError("ssd_scan: A must be real; for a rotating (complex) state use ssd_rotary on B and C")
    for name, t in (("B", B), ("C", C)):
        if t.dim() != 4 or _shape(t)[:2] != (batch, length) or heads % max(t.shape[2], 1) != 0 or t.shape[2] == 0:
            raise InputError(
                f"ssd_scan: {name} must be (batch, L, G, N) with batch={batch}, L={length} and G dividing H={heads}; "
                f"got {_shape(t)}"
            )
    if _shape(B) != _shape(C):
        raise InputError(f"ssd_scan: B and C must have the same shape, got {_shape(B)} and {_shape(C)}")
    if D is not None and _shape(D) not in ((heads,), (heads, headdim)):
        raise InputError(f"ssd_scan: D must be (H,) = ({heads},) or (H, P) = {(heads, headdim)}, got {_shape(D)}")
    if z is not None and _shape(z) != _shape(x):
        raise InputError(f"ssd_scan: z must have the shape of x {_shape(x)}, got {_shape(z)}")
    if dt_bias is not None and _shape(dt_bias) != (heads,):
        raise InputError(f"ssd_scan: dt_bias must be (H,) = ({heads},), got {_shape(dt_bias)}")
    if initial_states is not None and _shape(initial_states) != (batch, heads, headdim, B.shape[3]):
        raise InputError(
            f"ssd_scan: initial_states must be (batch, H, P, N) = {(batch, heads, headdim, B.shape[3])}, "
            f"got {_shape(initial_states)}"
        )
    if trapezoid_lambda is not None and _shape(trapezoid_lambda) != (batch, length, heads):
        raise InputError(
            f"ssd_scan: trapezoid_lambda must be (batch, L, H) = {(batch, length, heads)}, "
            f"got {_shape(trapezoid_lambda)}"
        )
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InputError(f"ssd_scan: chunk_size must be a positive int, got {chunk_size!r}")
    tensors = [t for t in (x, dt, A, B, C, D, z, dt_bias, initial_states, trapezoid_lambda) if t is not None]
    if any(not t.is_floating_point() for t in tensors):
        raise InputError("ssd_scan: all inputs must be floating-point tensors")
    if len({t.device for t in tensors}) > 1:
        raise InputError(f"ssd_scan: all inputs must be on one device, got {sorted({str(t.device) for t in tensors})}")
    if not torch.compiler.is_compiling() and A.numel() and bool((A.detach() > 0).any()):
        raise InputError(
            "ssd_scan: A must be <= 0 (a decay, usually -exp(A_log)); a positive A makes the state grow without bound"
        )


def prepare_dt(dt: Tensor, dt_bias: Tensor | None, dt_softplus: bool, dtype: torch.dtype) -> Tensor:
    """Step sizes in the recurrence dtype: ``softplus(dt + dt_bias)`` with the optional parts left out."""
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    return F.softplus(dt) if dt_softplus else dt


def skip_and_gate(y: Tensor, x: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """``(y + D x) * silu(z)`` on ``(b, L, H, P)`` tensors, the optional parts left out."""
    if D is not None:
        y = y + x * (D.to(y.dtype) if D.dim() == 2 else rearrange(D.to(y.dtype), "h -> h 1"))
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def ssd_scan_ref(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    *,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
    initial_states: Tensor | None = None,
    trapezoid_lambda: Tensor | None = None,
    return_final_states: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """SSD scan, one time step after the other (see the module docstring for the recurrence).

    Args:
        x: Inputs, shape ``(batch, L, H, P)``.
        dt: Step sizes before bias/softplus, shape ``(batch, L, H)``.
        A: Scalar decay rate per head, ``(H,)``, non-positive.
        B: Input projections ``(batch, L, G, N)``; group ``g`` serves heads ``[g H/G, (g+1) H/G)``.
        C: Output projections, shape of ``B``.
        D: Skip term ``(H,)`` or ``(H, P)``.
        z: Gate ``(batch, L, H, P)``; the output is multiplied by ``silu(z)``.
        dt_bias: Added to ``dt``, shape ``(H,)``.
        dt_softplus: Apply softplus to ``dt`` after the bias.
        initial_states: State before the first step ``(batch, H, P, N)``; zeros when omitted.
        trapezoid_lambda: Mamba-3 trapezoid weights ``λ`` ``(batch, L, H)`` in ``[0, 1]``; omitted = ``λ = 1``.
        return_final_states: Also return the state after the last step.

    Returns:
        ``y`` ``(batch, L, H, P)`` in the dtype of ``x``; with ``return_final_states`` also the final state
        ``(batch, H, P, N)`` in the recurrence dtype.
    """
    check_ssd_inputs(x, dt, A, B, C, D, z, dt_bias, initial_states, trapezoid_lambda)
    cdt = compute_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states, trapezoid_lambda)
    batch, length, heads, headdim = x.shape
    dstate = B.shape[3]
    xc = x.to(cdt)
    dt = prepare_dt(dt, dt_bias, dt_softplus, cdt)
    Bh = repeat(B.to(cdt), "b l g n -> b l (g r) n", r=heads // B.shape[2])
    Ch = repeat(C.to(cdt), "b l g n -> b l (g r) n", r=heads // C.shape[2])
    lam = None if trapezoid_lambda is None else trapezoid_lambda.to(cdt)

    state = xc.new_zeros(batch, heads, headdim, dstate) if initial_states is None else initial_states.to(cdt)
    prev_drive = None  # x_{t-1} B_{t-1}ᵀ, (b, H, P, N)
    ys = []
    for t in range(length):
        alpha = torch.exp(dt[:, t] * A.to(cdt))  # (b, H)
        drive = torch.einsum("bhp,bhn->bhpn", xc[:, t], Bh[:, t])
        if lam is None:
            state = alpha[..., None, None] * state + dt[:, t, :, None, None] * drive
        else:
            gamma = lam[:, t] * dt[:, t]
            state = alpha[..., None, None] * state + gamma[..., None, None] * drive
            if prev_drive is not None:
                beta = (1 - lam[:, t]) * dt[:, t] * alpha
                state = state + beta[..., None, None] * prev_drive
            prev_drive = drive
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1) if ys else xc.new_zeros(batch, 0, heads, headdim)
    out = skip_and_gate(y, xc, D, z).to(x.dtype)
    return (out, state) if return_final_states else out
