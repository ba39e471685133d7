"""The ``cpu`` backend of :func:`ssmad.ssm.ssd_scan`: a C++ SSD-scan kernel compiled on first use, with its backward.

The source (``csrc/ssd_scan_cpu.cpp``) is plain C++17 (no torch headers). It is built and cached by the machinery
of the selective-scan kernel (:func:`ssmad.ssm.cpu._compile`: one library per source, compiler, flags and CPU,
written atomically) and loaded with :mod:`ctypes`. Work items (batch element × block of heads) run in parallel:
where torch has loaded GNU OpenMP (Linux wheels) the kernel is built with ``-fopenmp`` and its library binds to
torch's ``libgomp.so.1``, so the items run in one OpenMP region on torch's own threads; otherwise (or when that
build fails, or with ``SSMAD_NO_OPENMP=1``) on the selective-scan kernel's small Python thread pool. A second pool
next to torch's competed with torch's idle workers for the cores: at MambaADv2's finest stage the kernel's forward
right after a torch op took 2.3–3.3 ms through the pool and 1.3–1.5 ms in the OpenMP region (2 cores).

What runs where:

* in torch, before the kernel: ``dt + dt_bias`` and the softplus (autograd carries their gradients);
* in the kernel: the recurrence ``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_tᵀ``, ``y_t = h_t C_t + D x_t``, the final
  state, and the backward of all of it (``x, dt, A, B, C, D, initial_states``);
* in torch, after the kernel: the ``z`` gate, and the sum of the kernel's partial ``dB``/``dC`` rows (one per block
  of up to 8 heads of a group; the heads inside a block are summed by the kernel);
* the Mamba-3 trapezoid rule: a helper of the library turns the weights λ into the rule's input weights ``w`` and
  correction factors ``c_next`` (the formula of :func:`ssmad.ssm.ssd_mamba3.trapezoid_weights`, in one pass); the
  kernel runs the plain recurrence with input weights ``w`` and subtracts the diagonal correction
  ``c_next_t (C_t · B_t) x_t`` itself, with the gradients of both, and the helper's backward turns those into the
  gradients of ``dt`` and λ (the ``torch`` backend computes the same with tensor ops).

For inference, :func:`ssd_scan_cpu_directional` runs K scan orders of one map in one call: the kernel reads ``x``
through each order and adds the K outputs in raster order (no gathered copies, no scatter, no K-sum).

The forward stores no states: the backward runs two sweeps over the sequence, one forward from ``h0`` that
recomputes the states (and with them ``dC``), one backward with the adjoint recurrence
``g_t = exp(dt_{t+1} A) g_{t+1} + dy_t C_tᵀ`` (``dx``, ``dB``); the gradient of the decays comes from a running sum
of ``dy_t · (h_t C_t) - x̃_t · dx̃_t`` instead of the products ``<g_t, h_{t-1}>`` (derivation in the C++ file), reset
to the exact product every 32 steps from a state the first sweep keeps (float32 over 4096 steps, relative error of
``dA``: 1.6e-4 without the resets, 8e-7 with them, 7e-8 with the product at every step). The extra memory is one
state per head every 32 steps, half the size of ``x`` at ``P = N = 16``. Float32 inputs run in float32, float64
inputs in float64; float16/bfloat16 are computed in float32.

When no compiler is found, compilation fails, or ``SSMAD_NO_COMPILE=1`` is set, :func:`is_available` is False
(logged once) and ``auto`` uses the ``torch`` backend.
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
import threading
from pathlib import Path

import torch
from torch import Tensor

from . import cpu
from .reference import compute_dtype
from .softplus import softplus
from .ssd_reference import prepare_dt, skip_and_gate

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "ssd_scan_cpu.cpp"
_EXTRA_FLAGS = ("-fopenmp-simd",)
_ABI_VERSION = 7

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_failed: str | None = None


def _declare(lib: ctypes.CDLL) -> None:
    cpu.declare_item_kernels(lib, {"ssmad_ssd_fwd": (12, 9), "ssmad_ssd_bwd": (20, 8)})
    lib.ssmad_ssd_openmp.restype = ctypes.c_int
    lib.ssmad_ssd_abi_version.restype = ctypes.c_int
    lib.ssmad_ssd_head_block.restype = ctypes.c_int64
    lib.ssmad_ssd_backward_block.restype = ctypes.c_int64
    lib.ssmad_ssd_vector_bytes.restype = ctypes.c_int
    for suffix in ("f32", "f64"):
        for name, pointers in (("ssmad_ssd_trapezoid_fwd", 4), ("ssmad_ssd_trapezoid_bwd", 6)):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64] * 3
            fn.restype = ctypes.c_int


def _build() -> Path:
    """Compile (or find in the cache) the kernel library; raises RuntimeError/OSError on failure.

    With ``-fopenmp`` where torch runs on GNU OpenMP (:func:`ssmad.ssm.cpu.build_kernel`): the work items then run
    in one OpenMP region on torch's threads; otherwise on the selective-scan kernel's thread pool.
    """
    return cpu.build_kernel(SOURCE, _EXTRA_FLAGS, "ssd_scan")


def _launch(lib: ctypes.CDLL, kind: str, dtype: torch.dtype, args: tuple, items: int, updates: int) -> None:
    """Run kernel ``kind`` (``fwd``/``bwd``) over ``items`` work items (:func:`ssmad.ssm.cpu.launch`)."""
    cpu.launch(lib, f"ssmad_ssd_{kind}", dtype, items, args, updates, "ssmad_ssd_openmp")


def load_library() -> ctypes.CDLL | None:
    """Compile (first time) and load the kernel; None when that is impossible here (the reason is logged once)."""
    return cpu.load_once(sys.modules[__name__], _build, _declare, "ssmad_ssd_abi_version", _ABI_VERSION, "ssd_scan")


def is_available() -> bool:
    """Whether the compiled SSD kernel can be used in this process."""
    return load_library() is not None


def _trapezoid_inputs(lib: ctypes.CDLL, dt: Tensor, lam: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """The kernel's ``w`` and ``cn`` arrays for the trapezoid rule (``dt``'s dtype), or ``(None, None)``.

    ``w_t = λ_t dt_t + c_t`` and ``cn_t = c_t = (1 - λ_{t+1}) dt_{t+1}``
    (:func:`ssmad.ssm.ssd_mamba3.trapezoid_weights`) in one pass of the library's helper; ``dt`` and ``lam``
    contiguous ``(batch, L, H)``.
    """
    if lam is None:
        return None, None
    w, c_next = torch.empty_like(dt), torch.empty_like(dt)
    batch, length, heads = dt.shape
    getattr(lib, f"ssmad_ssd_trapezoid_fwd_{cpu.dtype_suffix(dt.dtype)}")(
        dt.data_ptr(), lam.data_ptr(), w.data_ptr(), c_next.data_ptr(), batch, length, heads
    )
    return w, c_next


def _forward_call(
    lib: ctypes.CDLL,
    tensors: tuple[Tensor | None, ...],
    y: Tensor,
    last: Tensor | None,
    order: Tensor | None,
    images: int,
) -> None:
    """Run the forward kernel over its items, ``tensors = (x, dt, w, cn, A, B, C, D, h0)``.

    With ``order`` (K, L), ``x`` and ``y`` are the ``images`` maps in raster order and ``dt``, ``B``, ``C``, ``w``,
    ``cn`` hold ``images · K`` sequences; without it, ``images`` is the batch and K = 1.
    """
    x, B = tensors[0], tensors[5]
    assert x is not None and B is not None
    _, length, heads, headdim = x.shape
    groups, dstate = B.shape[2], B.shape[3]
    k = 1 if order is None else order.shape[0]
    ptrs = (*tensors, y, last, order)
    args = (*map(cpu._ptr, ptrs), k, images * k, length, heads, headdim, groups, dstate)
    items = images * math.ceil(heads / lib.ssmad_ssd_head_block())  # item: (image, block of heads), all K orders
    _launch(lib, "fwd", x.dtype, args, items, images * k * length * heads * headdim * dstate)


class _SSDCpu(torch.autograd.Function):
    """``(x, dt, lam, A, B, C, D, h0) -> (y, h_last)`` on the kernel; ``dt`` already biased/softplused.

    ``lam`` ``(b, L, H)`` holds the trapezoid rule's weights λ, or None for the plain rule: the library turns them
    into the kernel's input weights ``w`` and correction factors ``cn`` (``y_t -= cn_t (C_t · B_t) x_t``), and the
    gradients of those back into ``dt`` and ``lam`` (:func:`_trapezoid_inputs`).
    """

    @staticmethod
    def forward(ctx, x, dt, lam, A, B, C, D, h0):  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        batch, _, heads, headdim = x.shape
        dstate = B.shape[3]
        w, cn = _trapezoid_inputs(lib, dt, lam)
        y = torch.empty_like(x)
        last = x.new_empty(batch, heads, headdim, dstate)
        _forward_call(lib, (x, dt, w, cn, A, B, C, D, h0), y, last, None, batch)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, dt, lam, w, cn, A, B, C, D, h0)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        x, dt, lam, w, cn, A, B, C, D, h0 = ctx.saved_tensors
        batch, length, heads, headdim = x.shape
        groups, dstate = B.shape[2], B.shape[3]
        dy = torch.zeros_like(x) if dy is None else dy.contiguous()
        dlast = None if dlast is None else dlast.contiguous()
        dx = torch.empty_like(x)
        ddt = torch.empty_like(dt)
        dw = None if w is None else torch.empty_like(w)
        dcn = None if cn is None else torch.empty_like(cn)
        dA = x.new_empty(batch, heads)
        per_group = heads // groups
        block = min(lib.ssmad_ssd_backward_block(), per_group)  # backward item: (batch, group, block of its heads)
        n_blocks = math.ceil(per_group / block)
        dBp = x.new_empty(batch, length, groups, n_blocks, dstate)
        dCp = x.new_empty(batch, length, groups, n_blocks, dstate)
        dD = None if D is None else x.new_empty(batch, heads, headdim)
        dh0 = None if h0 is None else torch.empty_like(h0)
        ptrs = (x, dt, w, cn, A, B, C, D, dy, dlast, h0, dx, ddt, dw, dcn, dA, dBp, dCp, dD, dh0)
        args = (*map(cpu._ptr, ptrs), batch, length, heads, headdim, groups, dstate)
        _launch(lib, "bwd", x.dtype, args, batch * groups * n_blocks, batch * length * heads * headdim * dstate)
        # heads of a group share B and C: the blocks' partial gradients add up
        dB = dBp[:, :, :, 0] if n_blocks == 1 else dBp.sum(3)
        dC = dCp[:, :, :, 0] if n_blocks == 1 else dCp.sum(3)
        dlam = None
        if lam is not None:  # dw, dcn into ddt (added) and dlam
            dlam = torch.empty_like(lam)
            getattr(lib, f"ssmad_ssd_trapezoid_bwd_{cpu.dtype_suffix(x.dtype)}")(
                *map(cpu._ptr, (dt, lam, dw, dcn, ddt, dlam)), batch, length, heads
            )
        return dx, ddt, dlam, dA.sum(0), dB, dC, (None if dD is None else dD.sum(0)), dh0


def ssd_scan_cpu(
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
    """SSD scan on the compiled kernel; arguments and results as :func:`ssmad.ssm.ssd.ssd_scan`.

    Shapes: ``x``, ``z`` ``(batch, L, H, P)``; ``dt``, ``trapezoid_lambda`` ``(batch, L, H)``; ``A``, ``dt_bias``
    ``(H,)``; ``B``, ``C`` ``(batch, L, G, N)``; ``D`` ``(H,)`` or ``(H, P)``; ``initial_states`` ``(batch, H, P, N)``.

    The trapezoid rule runs as the plain recurrence with its own input weights plus a diagonal correction
    (:func:`ssmad.ssm.ssd_mamba3.trapezoid_weights`), both inside the kernel.

    Raises:
        ValueError: Tensors not on the CPU, or the kernel not available.
    """
    if x.device.type != "cpu":
        raise ValueError(f"the 'cpu' ssd_scan backend needs CPU tensors, got {x.device}")
    if load_library() is None:
        raise ValueError("the 'cpu' ssd_scan backend is not available here (no working C++ compiler)")
    cdt = compute_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states, trapezoid_lambda)
    headdim = x.shape[3]
    xc = x.to(cdt).contiguous()
    dtc = prepare_dt(dt, dt_bias, False, cdt)
    dtc = (softplus(dtc) if dt_softplus else dtc).contiguous()
    Dc = None
    if D is not None:
        Dc = (D.to(cdt) if D.dim() == 2 else D.to(cdt)[:, None].expand(-1, headdim)).contiguous()
    h0 = None if initial_states is None else initial_states.to(cdt).contiguous()
    Bc, Cc = B.to(cdt).contiguous(), C.to(cdt).contiguous()
    lam = None if trapezoid_lambda is None else trapezoid_lambda.to(cdt).contiguous()
    y, last = _SSDCpu.apply(xc, dtc, lam, A.to(cdt).contiguous(), Bc, Cc, Dc, h0)
    out = skip_and_gate(y, xc, None, z).to(x.dtype)
    return (out, last) if return_final_states else out


def ssd_scan_cpu_directional(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    order: Tensor,
    *,
    trapezoid_lambda: Tensor | None = None,
) -> Tensor:
    """Sum of SSD scans of one map along K scan orders, on the kernel, for inference (no gradients).

    Equals ``Σ_k scatter_k(ssd_scan(x[:, order[k]], dt_k, A, B_k, C_k))`` where sequence ``k`` of image ``i`` is
    batch row ``i·K + k`` of ``dt``, ``B``, ``C`` and ``trapezoid_lambda`` and its output at step ``t`` belongs to
    position ``order[k, t]``; the kernel reads ``x`` and adds into the result in raster order, so the ``K`` gathered
    copies of ``x`` and the ``K`` outputs are never built (``directional_ssd`` in :mod:`ssmad.layers.hss2` is the
    readable composition, and the oracle in the tests).

    Args:
        x: Inputs in raster order ``(batch, L, H, P)``.
        dt: Positive step sizes (bias and softplus applied) ``(batch · K, L, H)``, in scan order.
        A: Decay rates ``(H,)``.
        B: Input projections ``(batch · K, L, G, N)``, in scan order.
        C: Output projections ``(batch · K, L, G, N)``, in scan order.
        order: ``order[k, t]`` = position visited at step ``t`` of order ``k``, ``(K, L)``; each row a permutation.
        trapezoid_lambda: Mamba-3 trapezoid weights ``(batch · K, L, H)`` in scan order, or None.

    Returns:
        ``(batch, L, H, P)`` in raster order, in ``x``'s dtype.

    Raises:
        ValueError: Tensors not on the CPU, the kernel not available, or inconsistent shapes.
    """
    lib = load_library()
    if lib is None:
        raise ValueError("the 'cpu' ssd_scan backend is not available here (no working C++ compiler)")
    if x.device.type != "cpu":
        raise ValueError(f"ssd_scan_cpu_directional needs CPU tensors, got {x.device}")
    batch, length, heads = x.shape[:3]
    k = order.shape[0]
    if order.shape != (k, length) or dt.shape != (batch * k, length, heads) or B.shape[:2] != (batch * k, length):
        raise ValueError(
            f"ssd_scan_cpu_directional: order {tuple(order.shape)}, dt {tuple(dt.shape)} and B {tuple(B.shape)} do "
            f"not fit x {tuple(x.shape)} with K = {k} orders of length {length}"
        )
    if length and (int(order.min()) < 0 or int(order.max()) >= length):
        raise ValueError(f"ssd_scan_cpu_directional: order has positions outside [0, {length})")
    cdt = compute_dtype(x, dt, A, B, C, trapezoid_lambda)
    with torch.no_grad():
        xc, dtc = x.to(cdt).contiguous(), dt.to(cdt).contiguous()
        Bc, Cc = B.to(cdt).contiguous(), C.to(cdt).contiguous()
        lam = None if trapezoid_lambda is None else trapezoid_lambda.to(cdt).contiguous()
        w, c_next = _trapezoid_inputs(lib, dtc, lam)
        orderc = order.to(device="cpu", dtype=torch.int64).contiguous()
        y = torch.empty_like(xc)
        tensors = (xc, dtc, w, c_next, A.to(cdt).contiguous(), Bc, Cc, None, None)
        _forward_call(lib, tensors, y, None, orderc, batch)
    return y.to(x.dtype)
