"""``ssd_scan``: the SSD scan of Mamba-2 (scalar decay per head), one entry point over three backends.

=============  ===========================================================================  =======
backend        what it is                                                                   devices
=============  ===========================================================================  =======
``reference``  the sequential oracle (:func:`ssmad.ssm.ssd_reference.ssd_scan_ref`)        any
``torch``      the chunked dual form in plain PyTorch (:mod:`ssmad.ssm.ssd_chunked`)       any
``cpu``        compiled C++ recurrence with its own backward (:mod:`ssmad.ssm.ssd_cpu`)     CPU
``auto``       ``cpu`` for CPU tensors when the kernel compiles here, else ``torch``        any
=============  ===========================================================================  =======

As for :func:`ssmad.ssm.selective_scan`, the environment variable ``SSMAD_SCAN_BACKEND`` replaces ``auto`` when it
names one of these backends (``reference``, ``torch``, or ``cpu`` for CPU tensors); other values leave ``auto``.

Mamba-3 switches (:mod:`ssmad.ssm.ssd_mamba3`): ``trapezoid_lambda=`` (exponential-trapezoidal rule, through the
same chunked path or the same kernel) and :func:`~ssmad.ssm.ssd_mamba3.ssd_rotary` (data-dependent rotary state,
by rotating ``B`` and ``C`` before the scan).
"""

from __future__ import annotations

import os
from typing import Literal

from torch import Tensor

from ..errors import InputError, MissingDependencyError
from .ssd_reference import check_ssd_inputs, ssd_scan_ref

SSDBackend = Literal["auto", "reference", "torch", "cpu"]
SSD_BACKENDS: tuple[str, ...] = ("reference", "torch", "cpu")


def _resolve(backend: str, x: Tensor) -> str:
    """The backend that runs (``auto`` resolved as in the module docstring).

    ``auto`` → ``$SSMAD_SCAN_BACKEND`` if it names an SSD backend, else ``cpu`` (CPU tensors, kernel built) or
    ``torch``.
    """
    if backend == "auto":
        forced = os.environ.get("SSMAD_SCAN_BACKEND", "").strip().lower()
        if forced in ("reference", "torch") or (forced == "cpu" and x.device.type == "cpu"):
            backend = forced
    if backend not in ("auto", "cpu"):
        return backend
    if backend == "cpu":
        from . import ssd_cpu

        if x.device.type != "cpu":
            raise InputError(f"ssd_scan: backend 'cpu' needs CPU tensors, got {x.device}; use backend='auto'")
        if not ssd_cpu.is_available():
            raise MissingDependencyError(
                "ssd_scan: backend 'cpu' is not available: the C++ kernel needs a working C++ compiler (g++/clang++) "
                "and SSMAD_NO_COMPILE unset; use backend='auto' or 'torch'"
            )
    elif x.device.type != "cpu":
        return "torch"
    else:
        from . import ssd_cpu

        if not ssd_cpu.is_available():
            return "torch"
    return "cpu"


def ssd_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    *,
    chunk_size: int = 64,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
    initial_states: Tensor | None = None,
    trapezoid_lambda: Tensor | None = None,
    return_final_states: bool = False,
    backend: SSDBackend | str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """SSD scan (Mamba-2) with the shapes and meaning of mamba-ssm's ``mamba_chunk_scan_combined``.

    Recurrence, per batch element and head ``h`` (group ``g = h // (H / G)``)::

        dt_t  = softplus(dt_t + dt_bias)             (bias, softplus optional)
        h_t   = exp(dt_t A_h) h_{t-1} + dt_t x_t B_tᵀ     state (P, N), h_{-1} = initial_states or 0
        y_t   = h_t C_t + D_h x_t
        out_t = y_t * silu(z_t)                      (gate optional)

    Args:
        x: Inputs ``(batch, L, H, P)``.
        dt: Step sizes before bias/softplus ``(batch, L, H)``.
        A: One real, non-positive decay rate per head ``(H,)``.
        B: Input projections ``(batch, L, G, N)``, ``H % G == 0``; group ``g`` serves heads ``[g H/G, (g+1) H/G)``.
        C: Output projections, shape of ``B``.
        chunk_size: Chunk length ``Q`` of the dual form (``torch`` backend); any positive int, ``L`` need not be
            a multiple of it. It changes only rounding, not the result.
        D: Skip term ``(H,)`` or ``(H, P)``.
        z: Gate ``(batch, L, H, P)``.
        dt_bias: Added to ``dt`` ``(H,)``.
        dt_softplus: Apply softplus to ``dt`` after the bias.
        initial_states: State before the first step ``(batch, H, P, N)``.
        trapezoid_lambda: Mamba-3 exponential-trapezoidal weights ``λ`` ``(batch, L, H)``, values in ``[0, 1]``
            (see :mod:`ssmad.ssm.ssd_mamba3`); omitted means ``λ = 1``, the recurrence above.
        return_final_states: Also return the state after the last step.
        backend: ``auto``, ``reference``, ``torch`` or ``cpu`` (module docstring).

    Returns:
        ``y`` ``(batch, L, H, P)`` in the dtype of ``x``; with ``return_final_states`` also the final state
        ``(batch, H, P, N)`` in the recurrence dtype (float32, or float64 when an input is float64). All math
        runs in float32 for float16/bfloat16 inputs.

    Raises:
        InputError: Shapes that do not fit the contract above, a positive ``A``, mixed devices, unknown backend.
        MissingDependencyError: ``backend="cpu"`` where the kernel cannot be compiled.
    """
    check_ssd_inputs(x, dt, A, B, C, D, z, dt_bias, initial_states, trapezoid_lambda, chunk_size)
    if backend != "auto" and backend not in SSD_BACKENDS:
        raise InputError(f"ssd_scan: unknown backend {backend!r}; choose one of auto, {', '.join(SSD_BACKENDS)}")
    backend = _resolve(backend, x)
    kwargs = dict(
        D=D,
        z=z,
        dt_bias=dt_bias,
        dt_softplus=dt_softplus,
        initial_states=initial_states,
        trapezoid_lambda=trapezoid_lambda,
        return_final_states=return_final_states,
    )
    if backend == "reference":
        return ssd_scan_ref(x, dt, A, B, C, **kwargs)
    if backend == "cpu":
        from .ssd_cpu import ssd_scan_cpu

        return ssd_scan_cpu(x, dt, A, B, C, **kwargs)  # type: ignore[arg-type]
    from .ssd_chunked import ssd_scan_chunked

    return ssd_scan_chunked(x, dt, A, B, C, chunk_size=chunk_size, **kwargs)
