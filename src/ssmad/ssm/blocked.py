"""The ``export`` backend: a blocked selective scan in plain tensor operations, for ONNX and ``torch.export``.

The other fast backends are a C++ extension (``cpu``), an ``autograd.Function`` with in-place writes into strided
views (``torch``) or an external CUDA kernel (``cuda``); none of them traces into a graph that onnxruntime can run.
This module solves the same recurrence ``h_t = a_t h_{t-1} + x_t`` (``a_t = exp(dt_t A)``, ``x_t = dt_t B_t u_t``,
``y_t = <C_t, h_t> + D u_t``) with out-of-place slicing, element-wise arithmetic, ``cumsum``, ``exp`` and sums only,
so a trace holds nothing but standard operators (Slice, Mul, Add, Exp, CumSum, ReduceSum, Concat …).

Two levels, each a loop of about ``sqrt(L)`` steps that the trace unrolls (``O(L)`` work, ``O(sqrt L)`` graph
nodes). The ``L`` steps (padded at the end with ``a = 1``, ``x = 0``, which leaves the state unchanged) are cut into
``nb`` blocks of ``T`` steps:

1. **block summaries, in parallel over all blocks**: with ``s_t`` the cumulative sum of ``dt`` inside a block and
   ``s_end`` its total, the state a block would end in from a zero start is
   ``e = sum_t exp(A (s_end - s_t)) x_t`` and its total decay is ``exp(A s_end)``. Every exponent is ``A`` (< 0)
   times a non-negative sum of step sizes, so every factor lies in ``(0, 1]``: nothing can overflow, unlike the
   ``exp(S_t) * cumsum(exp(-S_s) x_s)`` form, which divides by a product of decays that underflows for long blocks;
2. **carries, sequentially over blocks**: the state entering block ``c`` is
   ``h_c = exp(A s_end[c-1]) h_{c-1} + e[c-1]`` (``nb`` small steps);
3. **the states, sequentially inside the blocks, all blocks at once**: ``T`` steps of
   ``h = a_t h + x_t`` started from each block's carry, and the output ``<C_t, h>`` of every step. The full
   ``(L, batch, D, N)`` state tensor is never stacked.

Every loop step works on one step of all blocks, ``(nb, batch, D, N)``, so no temporary holds more than
``1 / T`` of the ``(L, batch, D, N)`` states and drives (at 256 × 256 pixels, MambaAD's finest stage would need
268 MB per image for one of them).

Inside, tensors are time-major and blocked: ``(T, nb, batch, G, P, N)`` with ``P = D / G`` channels per group. No
custom backward: autograd differentiates the operations (slower than the ``torch`` backend, but exact), so the
backend is also tested for gradients like every other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["block_length", "core"]


def block_length(length: int) -> int:
    """Steps per block for a sequence of ``length`` steps: ``ceil(sqrt(length))`` (at least 1)."""
    return max(1, math.isqrt(max(length - 1, 0)) + 1)


def _blocked(x: Tensor, length: int, block: int, groups: int, fill: float = 0.0) -> Tensor:
    """``(b, G·k, L)`` or ``(b, G, k, L)`` → ``(T, nb, b, G, k)``, time padded at the end with ``fill``."""
    batch = x.shape[0]
    x = x.reshape(batch, groups, -1, length)
    n_blocks = (length + block - 1) // block
    pad = n_blocks * block - length
    if pad:
        x = F.pad(x, (0, pad), value=fill)
    x = x.reshape(batch, groups, x.shape[2], n_blocks, block)
    return x.permute(4, 3, 0, 1, 2)


def core(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, want_last: bool
) -> tuple[Tensor, Tensor | None]:
    """Core recurrence as a blocked scan in plain tensor operations (contract in :mod:`ssmad.ssm._core`).

    Args:
        u: Inputs, shape ``(batch, D, L)``.
        dt: Step sizes after bias and softplus, shape ``(batch, D, L)``.
        A: Shape ``(D, N)``.
        B, C: Grouped, shape ``(batch, G, N, L)``.
        D: Skip term ``(D,)`` or None.
        want_last: Return the last state as well.

    Returns:
        ``y`` ``(batch, D, L)`` and the last state ``(batch, D, N)`` (None unless ``want_last``).
    """
    # Only the batch size may vary in an exported graph: the other sizes are frozen to Python integers, so that a
    # tracer computes no index arithmetic on them (TorchScript would turn ``//`` into a truncating division).
    batch = u.shape[0]
    dim, length, groups, dstate = int(u.shape[1]), int(u.shape[2]), int(B.shape[1]), int(B.shape[2])
    per = dim // groups
    block = block_length(length)
    # padded steps have dt = 0: decay exp(0) = 1 and drive 0, so the state passes through them unchanged
    dt_b = _blocked(dt, length, block, groups)  # (T, nb, b, G, P)
    dtu_b = _blocked(dt * u, length, block, groups)  # (T, nb, b, G, P)
    B_b = _blocked(B, length, block, groups).unsqueeze(-2)  # (T, nb, b, G, 1, N)
    C_b = _blocked(C, length, block, groups).unsqueeze(-2)
    A3 = A.reshape(groups, per, dstate)  # (G, P, N)

    # 1. block summaries, one step of every block at a time (every exponent is A times a non-negative sum of step
    #    sizes: factors in (0, 1])
    s = torch.cumsum(dt_b, dim=0)  # (T, nb, b, G, P)
    s_end = s[-1]
    ends = torch.zeros_like(dtu_b[0].unsqueeze(-1) * B_b[0])  # (nb, b, G, P, N)
    for t in range(block):
        weight = torch.exp((s_end - s[t]).unsqueeze(-1) * A3)
        ends = ends + weight * (dtu_b[t].unsqueeze(-1) * B_b[t])
    decays = torch.exp(s_end.unsqueeze(-1) * A3)  # (nb, b, G, P, N)

    # 2. the state entering every block
    carry = [torch.zeros_like(ends[0])]
    for c in range(1, ends.shape[0]):
        carry.append(decays[c - 1] * carry[-1] + ends[c - 1])
    h = torch.stack(carry, dim=0)  # (nb, b, G, P, N)

    # 3. inside the blocks, all blocks at once; one output row per step
    ys = []
    for t in range(block):
        h = torch.exp(dt_b[t].unsqueeze(-1) * A3) * h + dtu_b[t].unsqueeze(-1) * B_b[t]
        ys.append((h * C_b[t]).sum(dim=-1))  # (nb, b, G, P)
    y = torch.stack(ys, dim=0)  # (T, nb, b, G, P)
    y = y.permute(2, 3, 4, 1, 0).reshape(batch, dim, -1)[..., :length]
    if D is not None:
        y = y + u * D.unsqueeze(-1)
    last = h[-1].reshape(batch, dim, dstate) if want_last else None
    return y, last
