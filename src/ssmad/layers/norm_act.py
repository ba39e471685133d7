"""Normalisation + activation pairs of MambaAD's layers, with a compiled CPU kernel for both directions.

* :func:`instance_norm_silu`: ``SiLU(InstanceNorm(x))`` on channels-last maps. MambaAD's local branches apply
  ``Conv → InstanceNorm2d → SiLU`` three times per kernel size. PyTorch's CPU instance norm runs as a batch norm on a
  ``(1, batch · C, H, W)`` reshape, which turns a channels-last map (what the convolutions there produce fastest, see
  :func:`ssmad.layers.lss.conv_branch`) into a channels-first copy, and back in the backward; the SiLU and its
  backward are two more passes.
* :func:`layer_norm_silu_gate`: ``LayerNorm(y) · SiLU(z)``, SS2D's ``out_norm(y) * silu(z)`` (five passes forward
  and backward in PyTorch: the norm, the SiLU, the product and their backwards).

The kernels (``norm_act_cpu.cpp`` beside the other CPU kernels, compiled on first use like them) do each pair in one
or two passes over memory each way; everywhere else the functions are the PyTorch compositions (the oracles): other
devices and dtypes, other layouts, export and compiler traces, no compiler, a kernel library built without OpenMP.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ssm import cpu as _cpu_kernels
from ..ssm import is_tracing

__all__ = ["instance_norm_silu", "instance_norm_silu_available", "layer_norm_silu_gate"]

SOURCE = Path(_cpu_kernels.__file__).parent / "csrc" / "norm_act_cpu.cpp"
_ABI_VERSION = 4
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_failed: str | None = None


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.ssmad_in_silu_fwd_f32.argtypes = [p, p, p, p, i, i, i, ctypes.c_double, i]
    lib.ssmad_in_silu_bwd_f32.argtypes = [p, p, p, p, p, i, i, i, i]
    lib.ssmad_ln_gate_fwd_f32.argtypes = [p, p, p, p, p, p, p, i, i, ctypes.c_double, i]
    lib.ssmad_ln_gate_bwd_f32.argtypes = [p, p, p, p, p, p, p, p, p, p, p, i, i, i]
    lib.ssmad_ln_gate_items.argtypes = [i]
    lib.ssmad_ln_gate_items.restype = ctypes.c_int64
    for fn in (
        lib.ssmad_in_silu_fwd_f32,
        lib.ssmad_in_silu_bwd_f32,
        lib.ssmad_ln_gate_fwd_f32,
        lib.ssmad_ln_gate_bwd_f32,
        lib.ssmad_norm_abi_version,
        lib.ssmad_norm_openmp,
    ):
        fn.restype = ctypes.c_int


def load_library() -> ctypes.CDLL | None:
    """Compile (first time) and load the kernel; None when that is impossible here (the reason is logged once)."""
    return _cpu_kernels.load_once(
        sys.modules[__name__], _build, _declare, "ssmad_norm_abi_version", _ABI_VERSION, "norm_act"
    )


def _build() -> Path:
    return _cpu_kernels.build_kernel(SOURCE, (), "norm_act")


def _threads(lib: ctypes.CDLL) -> int:
    return torch.get_num_threads() if lib.ssmad_norm_openmp() else 1


def _kernel_usable(*tensors: Tensor) -> bool:
    """float32 CPU tensors outside traces, and a kernel library that runs on torch's threads (or one thread)."""
    if not all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) or is_tracing():
        return False
    lib = load_library()
    return lib is not None and (lib.ssmad_norm_openmp() == 1 or torch.get_num_threads() == 1)


def instance_norm_silu_available(x: Tensor) -> bool:
    """Whether :func:`instance_norm_silu` takes the compiled kernel for ``x``."""
    return x.dim() == 4 and x.numel() > 0 and x.is_contiguous(memory_format=torch.channels_last) and _kernel_usable(x)


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


class _LayerNormSiLUGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, z: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        c = y.shape[-1]
        rows = y.numel() // c
        out = torch.empty_like(y)
        mean = y.new_empty(rows)
        rstd = y.new_empty(rows)
        w, b = weight.contiguous(), bias.contiguous()
        lib.ssmad_ln_gate_fwd_f32(
            y.data_ptr(), z.data_ptr(), w.data_ptr(), b.data_ptr(), out.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
            rows, c, float(eps), _threads(lib),
        )  # fmt: skip
        ctx.save_for_backward(y, z, w, b, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, None]:  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        y, z, w, b, mean, rstd = ctx.saved_tensors
        c = y.shape[-1]
        rows = y.numel() // c
        dout = dout.contiguous()
        dy = torch.empty_like(y)
        dz = torch.empty_like(z)
        items = lib.ssmad_ln_gate_items(rows)
        dw_part = y.new_empty(items, c)
        db_part = y.new_empty(items, c)
        lib.ssmad_ln_gate_bwd_f32(
            y.data_ptr(), z.data_ptr(), w.data_ptr(), b.data_ptr(), mean.data_ptr(), rstd.data_ptr(), dout.data_ptr(),
            dy.data_ptr(), dz.data_ptr(), dw_part.data_ptr(), db_part.data_ptr(), rows, c, _threads(lib),
        )  # fmt: skip
        return dy, dz, dw_part.sum(0), db_part.sum(0), None


def layer_norm_silu_gate(y: Tensor, z: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """``F.layer_norm(y, (C,), weight, bias, eps) * F.silu(z)``: SS2D's normalised scan output times its gate.

    Args:
        y: Normalised over the last axis, shape ``(..., C)``.
        z: Gate before its SiLU, the same shape.
        weight: LayerNorm weight, shape ``(C,)``.
        bias: LayerNorm bias, shape ``(C,)``.
        eps: Added to the (biased) variance.

    Returns:
        Shape ``(..., C)``. Contiguous float32 CPU ``y`` and ``z`` take the compiled kernel.
    """
    c = y.shape[-1]
    if (
        y.shape == z.shape
        and y.numel() > 0
        and weight.shape == bias.shape == (c,)
        and y.is_contiguous()
        and z.is_contiguous()
        and _kernel_usable(y, z, weight, bias)
    ):
        return _LayerNormSiLUGate.apply(y, z, weight, bias, eps)  # type: ignore[no-any-return]
    return F.layer_norm(y, (c,), weight, bias, eps) * F.silu(z)
