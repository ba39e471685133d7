"""The ``triton`` backend: selective scan (forward and backward) and the fused K-direction scan in Triton.

Triton ships with PyTorch's CUDA wheels, so this backend needs nothing compiled at install time. The kernels are in
:mod:`ssmad.ssm._triton_kernels` (design notes there); this module holds the torch side: availability, launch
geometry and the :class:`torch.autograd.Function`. Nothing here imports :mod:`triton` until a kernel is launched.

Devices:

* CUDA tensors: the kernels are compiled by Triton on first use (cached by Triton).
* CPU tensors: only under Triton's interpreter, ``TRITON_INTERPRET=1`` set before the process imports Triton
  (Triton reads it when functions are decorated). It is slow and meant for tests; otherwise a
  :class:`~ssmad.errors.MissingDependencyError` says so.

Numerics: the recurrence runs in float32 (float16/bfloat16/float32 inputs are converted by the shared wrapper,
:func:`ssmad.ssm._core.scan_with_core`, which also applies ``delta_bias``, softplus and the ``silu(z)`` gate with
torch). Float64 inputs go to the ``torch`` backend (logged once), as with mamba-ssm.

Memory: the forward keeps the state at the start of every chunk of :data:`CHUNK` steps (only when a gradient is
wanted); the backward recomputes the states inside a chunk from it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..errors import MissingDependencyError

logger = logging.getLogger(__name__)

#: Time steps per chunk (a power of two); ``None`` means :data:`DEFAULT_CHUNK`. Tests force small values.
CHUNK: int | None = None
DEFAULT_CHUNK = 32
#: Elements of one ``(BLOCK_D, BLOCK_N, T)`` register tile: sets how many channels a program takes.
TILE = 4096
#: Warps per program.
NUM_WARPS = 4
#: On a GPU, channel blocks shrink (down to 2 channels) until there are this many programs per multiprocessor.
PROGRAMS_PER_SM = 2

_warned_f64 = False


def interpret_requested() -> bool:
    """Whether ``TRITON_INTERPRET=1`` is set (Triton's interpreter, which runs kernels on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")


def triton_importable() -> bool:
    """Whether the ``triton`` package is installed (found without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken or stubbed entry in sys.modules
        return False


def _imported_for_a_gpu() -> bool:
    """Whether Triton's language was already imported in compiled (not interpreted) form in this process."""
    lang = sys.modules.get("triton.language")
    return lang is not None and type(getattr(lang, "sum", None)).__name__ == "JITFunction"


def status(device: torch.device | str) -> tuple[bool, str]:
    """Whether the triton backend can run on ``device`` here, and why (one line)."""
    device = torch.device(device)
    if not triton_importable():
        return False, "triton is not installed (it ships with PyTorch's CUDA wheels: pip install triton)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device"
        return True, "triton is installed and a CUDA device is present"
    if device.type == "cpu":
        if interpret_requested():
            if _imported_for_a_gpu():
                return False, "TRITON_INTERPRET=1 was set after Triton was imported; set it before starting Python"
            return True, "TRITON_INTERPRET=1: Triton's interpreter (slow, for tests)"
        return False, "on CPU tensors only under TRITON_INTERPRET=1 (Triton's interpreter, for tests)"
    return False, f"no Triton kernels for {device.type} tensors"


def is_available(device: torch.device | str) -> bool:
    """Whether the triton backend can run on ``device`` here (see :func:`status`)."""
    return status(device)[0]


def _kernels(device: torch.device) -> ModuleType:
    """The kernel module, after checking that it can run on ``device`` in this process."""
    ok, why = status(device)
    if not ok:
        raise MissingDependencyError(f"selective-scan backend 'triton' is not available on {device}: {why}")
    from . import _triton_kernels as kernels

    if device.type == "cpu" and not kernels.INTERPRETED:
        raise MissingDependencyError(
            "selective-scan backend 'triton' on CPU tensors: Triton was imported in this process before "
            "TRITON_INTERPRET=1 was set, so its kernels are built for a GPU; set TRITON_INTERPRET=1 before starting "
            "Python (e.g. `TRITON_INTERPRET=1 python ...`)"
        )
    return kernels


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """Make ``device`` current while a kernel launches (Triton launches on the current CUDA device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _pow2(n: int, low: int = 2) -> int:
    """Smallest power of two >= max(n, low)."""
    p = low
    while p < n:
        p *= 2
    return p


def chunk_steps(length: int) -> int:
    """Time steps per chunk for a sequence of ``length`` steps (a power of two, at least 2)."""
    chunk = DEFAULT_CHUNK if CHUNK is None else int(CHUNK)
    if chunk < 2 or chunk & (chunk - 1):
        raise ValueError(f"triton_scan.CHUNK must be a power of two >= 2, got {chunk}")
    return min(chunk, _pow2(length))


def block_channels(channels: int, block_n: int, steps: int) -> int:
    """Channels per program: a power of two whose ``(BLOCK_D, BLOCK_N, T)`` tile fits :data:`TILE`."""
    fit = max(2, TILE // (block_n * steps))
    return min(_pow2(channels), 1 << (fit.bit_length() - 1))


def _min_programs(device: torch.device) -> int:
    if device.type != "cuda":
        return 1
    return PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count


def scan_geometry(batch: int, groups: int, per: int, dstate: int, length: int, device: torch.device) -> dict:
    """Launch geometry of the selective-scan kernels (chunk, paddings, channels per program, counts).

    Channels per program come from :data:`TILE`, then halve (down to 2) while the grid has fewer programs than
    :data:`PROGRAMS_PER_SM` per multiprocessor of ``device`` (GPUs only): a sequential scan needs many programs in
    flight to hide its latency. Untuned: no GPU was available when this was written.
    """
    steps = chunk_steps(length)
    block_n = _pow2(dstate)
    block_d = block_channels(per, block_n, steps)
    wanted = _min_programs(device)
    while block_d > 2 and batch * groups * -(-per // block_d) < wanted:
        block_d //= 2
    return {
        "steps": steps,
        "block_n": block_n,
        "block_d": block_d,
        "n_chunks": -(-length // steps),
        "n_blocks": -(-per // block_d),
    }


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C, D):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        kernels = _kernels(u.device)
        batch, dim, length = u.shape
        groups, dstate = B.shape[1], B.shape[2]
        per = dim // groups
        geo = scan_geometry(batch, groups, per, dstate, length, u.device)
        steps, block_n, block_d, n_chunks, n_blocks = (
            geo[k] for k in ("steps", "block_n", "block_d", "n_chunks", "n_blocks")
        )
        u, dt, A, B, C = (t.contiguous() for t in (u, dt, A, B, C))
        D = None if D is None else D.contiguous()
        train = any(ctx.needs_input_grad)
        y = torch.empty_like(u)
        last = u.new_empty(batch, dim, dstate)
        starts = u.new_empty(batch, dim, n_chunks, dstate) if train else last
        with _on(u.device):
            kernels._scan_fwd_kernel[(batch, groups, n_blocks)](
                u,
                dt,
                A,
                B,
                C,
                u if D is None else D,
                y,
                starts,
                last,
                length,
                dim,
                groups,
                per,
                dstate,
                n_chunks,
                BLOCK_D=block_d,
                BLOCK_N=block_n,
                T=steps,
                HAS_D=D is not None,
                SAVE_STARTS=train,
                SAVE_LAST=True,
                num_warps=NUM_WARPS,
            )
        if train:
            ctx.save_for_backward(u, dt, A, B, C, D, starts)
            ctx.geometry = (steps, block_n, block_d, n_chunks, n_blocks)
        return y, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dlast):  # type: ignore[override]
        u, dt, A, B, C, D, starts = ctx.saved_tensors
        kernels = _kernels(u.device)
        steps, block_n, block_d, n_chunks, n_blocks = ctx.geometry
        batch, dim, length = u.shape
        groups, dstate = B.shape[1], B.shape[2]
        per = dim // groups
        dy = torch.zeros_like(u) if dy is None else dy.float().contiguous()
        du = torch.empty_like(u)
        ddt = torch.empty_like(u)
        dA_part = u.new_empty(batch, dim, dstate)
        dD_part = u.new_empty(batch, dim)
        atomic = n_blocks > 1  # several programs add into the same dB/dC rows
        dB = (torch.zeros_like if atomic else torch.empty_like)(B)
        dC = (torch.zeros_like if atomic else torch.empty_like)(C)
        with _on(u.device):
            kernels._scan_bwd_kernel[(batch, groups, n_blocks)](
                u,
                dt,
                A,
                B,
                C,
                u if D is None else D,
                dy,
                starts,
                u if dlast is None else dlast.float().contiguous(),
                du,
                ddt,
                dA_part,
                dD_part,
                dB,
                dC,
                length,
                dim,
                groups,
                per,
                dstate,
                n_chunks,
                BLOCK_D=block_d,
                BLOCK_N=block_n,
                T=steps,
                HAS_D=D is not None,
                HAS_DLAST=dlast is not None,
                ATOMIC=atomic,
                num_warps=NUM_WARPS,
            )
        need_u, need_dt, need_A, need_B, need_C, need_D = ctx.needs_input_grad
        return (
            du if need_u else None,
            ddt if need_dt else None,
            dA_part.sum(0) if need_A else None,
            dB if need_B else None,
            dC if need_C else None,
            dD_part.sum(0) if (need_D and D is not None) else None,
        )


def core(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, want_last: bool
) -> tuple[Tensor, Tensor | None]:
    """Core recurrence on the Triton kernels (contract in :mod:`ssmad.ssm._core`).

    Args:
        u: Inputs, shape ``(batch, D, L)``, float32 (float64 goes to the torch backend).
        dt: Step sizes after bias and softplus, shape ``(batch, D, L)``.
        A: Shape ``(D, N)``.
        B, C: Grouped, shape ``(batch, G, N, L)``.
        D: Skip term ``(D,)`` or None.
        want_last: Return the last state as well.

    Returns:
        ``y`` ``(batch, D, L)`` and the last state ``(batch, D, N)`` (None unless ``want_last``).
    """
    global _warned_f64
    if u.dtype == torch.float64:
        if not _warned_f64:
            _warned_f64 = True
            logger.info("selective_scan: the triton kernels are float32; float64 inputs use the torch backend")
        from . import chunked

        return chunked.core(u, dt, A, B, C, D, want_last)
    y, last = _TritonScan.apply(u, dt, A, B, C, D)
    return y, (last if want_last else None)


def directional_core(
    x: Tensor,
    xdbl: Tensor,
    dt_weight: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    D: Tensor | None,
    index: Tensor,
) -> Tensor:
    """The fused K-direction inference scan on one Triton kernel (arguments as :func:`ssmad.ssm.directional_scan`).

    All tensors float32; no gradient. Returns ``(batch, L, D)`` float32.
    """
    kernels = _kernels(x.device)
    batch, length, dim = x.shape
    k, _, rank = dt_weight.shape
    dstate = A.shape[2]
    steps = chunk_steps(length)
    block_n = _pow2(dstate)
    block_r = _pow2(rank)
    block_d = block_channels(dim, max(block_n, block_r), steps)
    while block_d > 2 and batch * -(-dim // block_d) < _min_programs(x.device):
        block_d //= 2
    y = x.new_zeros(batch, length, dim)
    x, xdbl, dt_weight, dt_bias, A = (t.contiguous() for t in (x, xdbl, dt_weight, dt_bias, A))
    with _on(x.device):
        kernels._directional_fwd_kernel[(batch, -(-dim // block_d))](
            x,
            xdbl,
            dt_weight,
            dt_bias,
            A,
            x if D is None else D.contiguous(),
            index.to(device=x.device, dtype=torch.int32).contiguous(),
            y,
            length,
            dim,
            k,
            rank,
            dstate,
            -(-length // steps),
            BLOCK_D=block_d,
            BLOCK_N=block_n,
            BLOCK_R=block_r,
            T=steps,
            HAS_D=D is not None,
            num_warps=NUM_WARPS,
        )
    return y
