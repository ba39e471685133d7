"""Multi-direction selective scan over one set of positions (the core of SS2D and RSAL), fused on the CPU.

K directions visit the same L positions in different orders: direction ``k`` visits position ``index[k, t]`` at
step ``t``. Each direction has its own step-size projection, ``A`` and ``D``; their outputs are summed back at the
positions they belong to::

    for every direction k (u_t = x[index[k, t]], likewise dts, B, C):
        delta_t = softplus(dt_weight[k] @ dts_t + dt_bias[k])
        out_k[index[k, t]] = selective_scan(u, delta, A[k], B, C, D[k])_t
    y = sum_k out_k

Inputs are channels last, which is what the layers produce anyway: ``x`` ``(batch, L, D)`` and ``xdbl``
``(batch, L, K, R + 2N)`` holding each direction's ``[dts | B | C]`` at each position (one matmul of ``x`` with the
stacked ``x_proj`` weights gives it in raster order, with no gathered copy of ``x``).

:func:`directional_scan_ref` is the readable composition of gather → :func:`ssmad.ssm.selective_scan` → scatter,
the oracle of the fused kernel in both directions, and what runs on the other backends. On the ``cpu`` backend
:func:`directional_scan` runs the compiled kernel instead, which does the gathers, the projection to step sizes,
softplus, the K scans and the merge in one pass without the ``(batch, K, D, L)`` temporaries of the composition;
under autograd it also keeps the state entering every 64-step chunk, and its backward kernel recomputes the states
chunk by chunk to produce the gradients of ``x``, ``xdbl``, ``dt_weight``, ``dt_bias``, ``A`` and ``D``. On the
``triton`` backend (float32 recurrence, no gradient wanted) the same fusion runs as one Triton kernel.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ..errors import MissingDependencyError
from .interface import resolve_backend, selective_scan
from .reference import compute_dtype


def _check(
    x: Tensor, xdbl: Tensor, dt_weight: Tensor, dt_bias: Tensor, A: Tensor, D: Tensor | None, index: Tensor
) -> None:
    if x.dim() != 3:
        raise ValueError(f"directional_scan: x must be (batch, L, D), got shape {tuple(x.shape)}")
    batch, length, dim = x.shape
    if dt_weight.dim() != 3 or dt_weight.shape[1] != dim:
        raise ValueError(f"directional_scan: dt_weight must be (K, {dim}, R), got {tuple(dt_weight.shape)}")
    k, _, rank = dt_weight.shape
    if A.dim() != 3 or tuple(A.shape[:2]) != (k, dim):
        raise ValueError(f"directional_scan: A must be ({k}, {dim}, N), got {tuple(A.shape)}")
    dstate = A.shape[2]
    expected = {
        "xdbl": (xdbl, (batch, length, k, rank + 2 * dstate)),
        "dt_bias": (dt_bias, (k, dim)),
        "index": (index, (k, length)),
    }
    if D is not None:
        expected["D"] = (D, (k, dim))
    for name, (t, shape) in expected.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"directional_scan: {name} must have shape {shape}, got {tuple(t.shape)}")


def directional_scan_ref(
    x: Tensor,
    xdbl: Tensor,
    dt_weight: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    D: Tensor | None,
    index: Tensor,
    *,
    backend: str = "reference",
) -> Tensor:
    """The multi-direction scan as gather → selective scan → scatter-add, one direction after the other.

    Differentiable (through :func:`ssmad.ssm.selective_scan` with ``backend``). Arguments as in
    :func:`directional_scan`.
    """
    _check(x, xdbl, dt_weight, dt_bias, A, D, index)
    k, _, rank = dt_weight.shape
    dstate = A.shape[2]
    cdt = compute_dtype(x, xdbl, dt_weight, dt_bias, A, D)
    y = x.new_zeros(x.shape, dtype=cdt)
    for i in range(k):
        order = index[i].long()
        u = rearrange(x[:, order].to(cdt), "b l d -> b d l")
        dts, B, C = torch.split(xdbl[:, order, i].to(cdt), [rank, dstate, dstate], dim=-1)
        delta = torch.einsum("dr,blr->bdl", dt_weight[i].to(cdt), dts)
        out = selective_scan(
            u,
            delta,
            A[i].to(cdt),
            rearrange(B, "b l n -> b n l").contiguous(),
            rearrange(C, "b l n -> b n l").contiguous(),
            None if D is None else D[i].to(cdt),
            delta_bias=dt_bias[i].to(cdt),
            delta_softplus=True,
            backend=backend,
        )
        y = y.index_add(1, order, rearrange(out, "b d l -> b l d"))
    return y


def fused_available(backend: str, device: torch.device | str, dtype: torch.dtype, *, grad: bool = False) -> bool:
    """Whether :func:`directional_scan` runs a fused kernel for these settings.

    ``dtype`` is the recurrence dtype. The C++ kernel (``cpu``) takes float32 and float64, forward and backward;
    the Triton one (``triton``) takes float32 and serves inference only (``grad=False``).
    """
    try:
        name = resolve_backend(backend, device)
    except (MissingDependencyError, ValueError):  # reported by the scan itself when it runs
        return False
    if name == "cpu":
        return dtype in (torch.float32, torch.float64)
    return name == "triton" and dtype == torch.float32 and not grad


def directional_scan(
    x: Tensor,
    xdbl: Tensor,
    dt_weight: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    D: Tensor | None,
    index: Tensor,
    *,
    backend: str = "auto",
) -> Tensor:
    """Sum of K selective scans of the same positions visited in K orders (see the module docstring).

    Args:
        x: Inputs, channels last, positions in raster order, shape ``(batch, L, D)``.
        xdbl: Per position and direction ``[dts (R) | B (N) | C (N)]``, shape ``(batch, L, K, R + 2N)``.
        dt_weight: Step-size projections, shape ``(K, D, R)``.
        dt_bias: Step-size biases (before softplus), shape ``(K, D)``.
        A: State matrices (negative real), shape ``(K, D, N)``.
        D: Skip terms, shape ``(K, D)``, or None.
        index: ``index[k, t]`` = position visited at step ``t`` of direction ``k``, shape ``(K, L)``; each row a
            permutation of ``0 .. L-1``.
        backend: Selective-scan backend (``auto``, ``reference``, ``cpu``, ``torch``, ``cuda``, ``triton``). A fused
            kernel runs when it resolves to ``cpu`` (float32/float64, with or without gradients) or to ``triton``
            (float32, no gradient wanted); otherwise the composition :func:`directional_scan_ref` runs on it.

    Returns:
        Summed outputs, shape ``(batch, L, D)``, float32 (float64 for float64 inputs).
    """
    _check(x, xdbl, dt_weight, dt_bias, A, D, index)
    cdt = compute_dtype(x, xdbl, dt_weight, dt_bias, A, D)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, xdbl, dt_weight, dt_bias, A, D)
    )
    if not fused_available(backend, x.device, cdt, grad=grad):
        return directional_scan_ref(x, xdbl, dt_weight, dt_bias, A, D, index, backend=backend)
    if resolve_backend(backend, x.device) == "triton":
        from . import triton_scan

        return triton_scan.directional_core(
            x.to(cdt),
            xdbl.to(cdt),
            dt_weight.to(cdt),
            dt_bias.to(cdt),
            A.to(cdt),
            None if D is None else D.to(cdt),
            index,
        )
    from . import cpu

    x, xdbl, dt_weight, dt_bias, A = (t.to(cdt) for t in (x, xdbl, dt_weight, dt_bias, A))
    return cpu.directional_core(x, xdbl, dt_weight, dt_bias, A, None if D is None else D.to(cdt), index)
