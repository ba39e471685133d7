"""``softplus``: ``F.softplus`` (beta 1, threshold 20) on the compiled CPU kernel where that is possible.

torch's CPU softplus evaluates ``log1p`` one value at a time on some builds (torch 2.14 wheels on x86): about 6 ns
per value on 2 threads, so MambaADv2's step sizes at one decoder stage (65 k values) took 0.38 ms, two thirds of
the SSD kernel's whole forward at that shape. The selective-scan kernel library (:mod:`ssmad.ssm.cpu`) exports the
vectorised softplus it uses for its own step sizes, 0.05 ms there:

* float32 through an exp2 polynomial: relative error against float64 below 5e-7 for ``x >= -5`` and below 4e-6
  down to ``x = -87``, where the result stops at 1.2e-38 instead of going denormal (torch's float32: 1.2e-7);
* float64 through libm, as torch.

:func:`softplus` uses it for CPU float32/float64 tensors of at least :data:`KERNEL_VALUES` values when the library
is built and no export or compiler trace is running, and is ``F.softplus`` otherwise. Its gradient is torch's own
``softplus_backward``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import cpu

#: Below this many values ``F.softplus`` is as fast (the autograd function and the call cost ~6 µs).
KERNEL_VALUES = 4096
#: Below this many values the kernel runs on the calling thread (an OpenMP region costs more than it saves).
PARALLEL_VALUES = 1 << 18


def _kernel_applies(x: Tensor) -> bool:
    from .interface import is_tracing  # here: interface imports this module's users

    return (
        x.device.type == "cpu"
        and x.numel() >= KERNEL_VALUES
        and x.dtype in (torch.float32, torch.float64)
        and not is_tracing()
        and cpu.is_available()
    )


def _launch(x: Tensor, out: Tensor) -> None:
    """``out = softplus(x)`` on the kernel; both contiguous, same dtype and shape (``out`` may be ``x``)."""
    lib = cpu.load_library()
    assert lib is not None
    n = x.numel()
    threads = 1 if n < PARALLEL_VALUES else torch.get_num_threads()
    getattr(lib, f"ssmad_softplus_{cpu.dtype_suffix(x.dtype)}")(x.data_ptr(), out.data_ptr(), n, threads)


class _Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        x = x.contiguous()
        out = torch.empty_like(x)
        _launch(x, out)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.ops.aten.softplus_backward(grad, x, 1, 20)


def softplus(x: Tensor) -> Tensor:
    """``F.softplus(x)`` (beta 1, threshold 20), differentiable, on the compiled kernel where it applies.

    Args:
        x: Any shape.

    Returns:
        ``log(1 + exp(x))`` (``x`` itself above 20), shape and dtype of ``x``.
    """
    if not _kernel_applies(x):
        return F.softplus(x)
    return _Softplus.apply(x)


def softplus_(x: Tensor) -> Tensor:
    """In-place :func:`softplus` for tensors that need no gradient (inference); returns ``x``."""
    if not _kernel_applies(x) or not x.is_contiguous() or (torch.is_grad_enabled() and x.requires_grad):
        return torch.ops.aten.softplus.out(x, 1, 20, out=x)
    _launch(x, x)
    return x
