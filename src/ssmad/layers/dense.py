"""The layers' dense projections (``in_proj``, ``x_proj``, ``out_proj``) on the fastest CPU matrix product.

:func:`linear` is ``F.linear``. For float32 CPU inputs with many rows it runs as a 1×1 convolution on a channels-last
view instead, which PyTorch hands to oneDNN rather than to the BLAS behind ``F.linear``: on an AMD Zen 5 (2
threads) the BLAS (MKL) reached 92–168 GFLOP/s on these layers' shapes and oneDNN 100–328 GFLOP/s, forward and
backward (``benchmarks/bench_dense.py`` prints the pair on any machine). The result is the same product summed in
another order (float32 rounding only); the weight keeps ``nn.Linear``'s ``(out, in)`` layout, so checkpoints do not
change. Everything else (float64, GPUs, small inputs, export and compiler traces, oneDNN switched off) takes
``F.linear``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ssm import is_tracing

#: Fewest rows (positions × batch) for which the 1×1-convolution path is taken (below it, its fixed cost of a few
#: microseconds is not won back).
MIN_ROWS = 256


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() >= 2
        and x.numel() >= MIN_ROWS * x.shape[-1] > 0
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
        and not is_tracing()
    )


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` on the last axis, as :func:`torch.nn.functional.linear`.

    Args:
        x: Input, shape ``(..., in)``.
        weight: Shape ``(out, in)`` (an ``nn.Linear``'s weight).
        bias: Shape ``(out,)`` or ``None``.

    Returns:
        Shape ``(..., out)``, contiguous.
    """
    if not _use_onednn(x, weight):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])  # (M, in): a view for the layers' contiguous inputs
    # (M, in) seen as a (1, in, M, 1) channels-last image: the 1×1 convolution is the product, and its output
    # (1, out, M, 1) is channels-last too, i.e. (M, out) in memory
    image = rows.unsqueeze(0).unsqueeze(2).permute(0, 3, 1, 2)
    out = F.conv2d(image, weight.unsqueeze(-1).unsqueeze(-1), bias)
    return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])


def linear_split(x: Tensor, weight: Tensor, bias: Tensor | None, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """``torch.split(linear(x, weight, bias), sizes, dim=-1)``, with every part contiguous on the CPU.

    On the CPU each part is its own product with its rows of ``weight``: the parts come out contiguous (a split of one
    product is a strided view, on which elementwise CPU kernels run several times slower) and their gradients need no
    concatenation along the last axis (torch's CPU ``cat`` there copies row by row). Measured on an SS2D ``in_proj``
    with its SiLU gate, forward + backward, batch 8: 64×64 map, 24 → 2 × 48 channels 8.5 → 5.7 ms; 64 channels
    30.7 → 20.0 ms (medians). Elsewhere one product is split, as in the formula.

    Args:
        x: Input, shape ``(..., in)``.
        weight: Shape ``(sum(sizes), in)``.
        bias: Shape ``(sum(sizes),)`` or ``None``.
        sizes: Output sizes of the parts.

    Returns:
        One tensor per size, shape ``(..., size)``.
    """
    if x.device.type != "cpu" or is_tracing():
        return tuple(torch.split(linear(x, weight, bias), list(sizes), dim=-1))
    parts = []
    start = 0
    for size in sizes:
        stop = start + size
        parts.append(linear(x, weight[start:stop], None if bias is None else bias[start:stop]))
        start = stop
    return tuple(parts)
