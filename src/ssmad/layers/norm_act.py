"""``SiLU(InstanceNorm(x))`` on channels-last CPU maps, with a compiled kernel for both directions.

MambaAD's local branches apply ``Conv → InstanceNorm2d → SiLU`` three times per kernel size. PyTorch's CPU instance
norm runs as a batch norm on a ``(1, batch · C, H, W)`` reshape, which turns a channels-last map (what the
convolutions there produce fastest, see :func:`ssmad.layers.lss.conv_branch`) into a channels-first copy, and back in
the backward; the SiLU and its backward are two more passes. :func:`instance_norm_silu` does the pair in two passes
over channels-last memory each way (``instance_norm_silu_cpu.cpp`` beside the other CPU kernels, compiled on first
use like them), and is ``F.silu(F.instance_norm(x, eps=eps))`` (the oracle) everywhere else: other devices and
dtypes, channels-first inputs, export and compiler traces, no compiler, a kernel library built without OpenMP.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ssm import cpu as _cpu_kernels
from ..ssm import is_tracing

__all__ = ["instance_norm_silu", "instance_norm_silu_available"]

SOURCE = Path(_cpu_kernels.__file__).parent / "csrc" / "instance_norm_silu_cpu.cpp"
_ABI_VERSION = 2
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_failed: str | None = None


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.ssmad_in_silu_fwd_f32.argtypes = [p, p, p, p, i, i, i, ctypes.c_double, i]
    lib.ssmad_in_silu_bwd_f32.argtypes = [p, p, p, p, p, i, i, i, i]
    for fn in (lib.ssmad_in_silu_fwd_f32, lib.ssmad_in_silu_bwd_f32, lib.ssmad_norm_abi_version, lib.ssmad_norm_openmp):
        fn.restype = ctypes.c_int


def load_library() -> ctypes.CDLL | None:
    """Compile (first time) and load the kernel; None when that is impossible here (the reason is logged once)."""
    global _lib, _load_failed
    if _lib is not None or _load_failed is not None:
        return _lib
    with _lock:
        if _lib is None and _load_failed is None:
            _lib, _load_failed = _cpu_kernels.open_library(
                lambda: _cpu_kernels.build_kernel(SOURCE, (), "instance_norm_silu"),
                _declare,
                "ssmad_norm_abi_version",
                _ABI_VERSION,
                "instance_norm_silu",
            )
    return _lib


def _threads(lib: ctypes.CDLL) -> int:
    return torch.get_num_threads() if lib.ssmad_norm_openmp() else 1


def instance_norm_silu_available(x: Tensor) -> bool:
    """Whether :func:`instance_norm_silu` takes the compiled kernel for ``x``."""
    if not (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and x.numel() > 0
        and x.is_contiguous(memory_format=torch.channels_last)
        and not is_tracing()
    ):
        return False
    lib = load_library()
    return lib is not None and (lib.ssmad_norm_openmp() == 1 or torch.get_num_threads() == 1)


def _flat(t: Tensor) -> Tensor:
    """A channels-last ``(batch, C, H, W)`` map as its ``(batch, H·W, C)`` memory (a view)."""
    b, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(b, h * w, c)


class _InstanceNormSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        b, c, h, w = x.shape
        xf = _flat(x)
        y = torch.empty_like(x, memory_format=torch.channels_last)
        mean = x.new_empty(2, b, c)  # the mean as a float pair (hi, lo)
        rstd = x.new_empty(b, c)
        lib.ssmad_in_silu_fwd_f32(
            xf.data_ptr(), y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), b, h * w, c, float(eps), _threads(lib)
        )
        ctx.save_for_backward(x, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        x, mean, rstd = ctx.saved_tensors
        b, c, h, w = x.shape
        dy = dy.contiguous(memory_format=torch.channels_last)
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        lib.ssmad_in_silu_bwd_f32(
            _flat(x).data_ptr(),
            _flat(dy).data_ptr(),
            mean.data_ptr(),
            rstd.data_ptr(),
            dx.data_ptr(),
            b,
            h * w,
            c,
            _threads(lib),
        )
        return dx, None


def instance_norm_silu(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``F.silu(F.instance_norm(x, eps=eps))``: per map and channel normalisation, then SiLU.

    The normalisation has no affine parameters and no running statistics (``nn.InstanceNorm2d``'s defaults).

    Args:
        x: Map, shape ``(batch, C, H, W)``; channels-last float32 CPU maps take the compiled kernel.
        eps: Added to the (biased) variance.

    Returns:
        Shape ``(batch, C, H, W)``, channels-last memory when the kernel ran.
    """
    if instance_norm_silu_available(x):
        return _InstanceNormSiLU.apply(x, eps)  # type: ignore[no-any-return]
    return F.silu(F.instance_norm(x, eps=eps))
