"""The ``torch`` backend: a chunked selective scan in plain PyTorch, with its own backward, on any device.

The recurrence ``h_t = a_t * h_{t-1} + x_t`` (``a_t = exp(dt_t A)``, ``x_t = dt_t B_t u_t``) is linear in ``h``, so
a block of time steps can be solved at once by a *parallel scan* over the pairs ``(a_t, x_t)``. This module uses
the odd/even (Blelloch-style) recursion: combine neighbouring pairs, solve the half-length problem for the odd
positions, then fix up the even ones. It takes ``3 log2 T`` tensor operations for ``T`` steps and ``O(T)`` work;
it only ever *multiplies* decays (all ``<= 1`` for a stable SSM), so it cannot overflow — unlike the
``exp(S_t - S_s)`` cumulative-sum trick, which divides by a product of decays that underflows when ``dt A`` is
large.

Memory is bounded by chunks. The sequence is cut into chunks of ``T`` steps, with ``T`` chosen so that one
``(T, batch, D, N)`` buffer stays within a per-device element budget (:data:`BUDGET`), or forced with
:data:`CHUNK`. The forward scans chunk after chunk, carrying the state across the boundary, and keeps only the
state at the start of each chunk for the backward. The backward walks the chunks in reverse, recomputes the
states of a chunk from its start state, and solves the adjoint recurrence — also linear, and run with the same
scan in reverse::

    g_t = C_t dy_t + a_{t+1} g_{t+1}                        (g = dLoss/dh, plus dlast at the end)
    du_t  = D dy_t + dt_t sum_n g_t B_t
    ddt_t = u_t sum_n g_t B_t + sum_n A g_t a_t h_{t-1}
    dA    = sum_{batch, t} dt_t g_t a_t h_{t-1}
    dB_t  = sum_{channels of the group} dt_t u_t g_t        dC_t = sum_{channels of the group} dy_t h_t
    dD    = sum_{batch, t} dy_t u_t

Inside, tensors are *time-major* — ``(L, batch, G, P)`` and ``(T, batch, G, N, P)`` with ``P = D / G`` channels
per group innermost — so every step of the scan works on whole contiguous rows of ``batch · D · N`` numbers,
sums over ``N`` (the output ``<C_t, h_t>``) are vector-matrix products, and sums over the channels of a group
are reductions along the contiguous last axis.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Force the chunk length (time steps); ``None`` picks it from :data:`BUDGET`.
CHUNK: int | None = None
#: Elements of one ``(T, batch, D, N)`` work buffer, per device type (the backward holds four of them);
#: small on CPUs so a chunk stays in cache, large on GPUs so each operation fills the device.
BUDGET: dict[str, int] = {"cpu": 2**19, "cuda": 2**25}
_DEFAULT_BUDGET = 2**22


def chunk_length(length: int, row: int, device: torch.device) -> int:
    """Time steps per chunk for a sequence of ``length`` steps whose state has ``row`` elements per step."""
    if CHUNK is not None:
        return max(1, min(int(CHUNK), length))
    budget = BUDGET.get(device.type, _DEFAULT_BUDGET)
    return max(1, min(length, budget // max(row, 1)))


def _work_rows(steps: int) -> int:
    """Rows of scratch space that :func:`scan_` and :func:`scan_reverse_` need for ``steps`` steps."""
    fwd, rev, n = 0, 0, steps
    while n // 2 > 1:
        fwd += n // 2
        n //= 2
    n = steps
    while n > 1 and (n + 1) // 2 > 1:
        rev += (n + 1) // 2
        n = (n + 1) // 2
    return max(fwd, rev, 1)


def scan_(a: Tensor, x: Tensor, work: Tensor) -> None:
    """Solve ``x[t] <- x[t] + a[t] * x[t-1]`` for ``t = 1 .. T-1`` (in order) in place along dim 0.

    Args:
        a: Decays, shape ``(T, ...)``; read only.
        x: Inputs, replaced by the states; shape ``(T, ...)``.
        work: Scratch space of at least ``_work_rows(T)`` rows with the trailing shape of ``x``.
    """
    steps = x.shape[0]
    if steps < 2:
        return
    n_odd = steps // 2
    x_odd, x_even = x[1::2], x[0::2]
    a_odd, a_even = a[1::2], a[0::2]
    x_odd.addcmul_(a_odd, x_even[:n_odd])  # pairs (2k, 2k+1) combined
    if n_odd > 1:
        a_pair = work[:n_odd]  # decay from odd position 2k-1 to 2k+1
        torch.mul(a_odd, a_even[:n_odd], out=a_pair)
        scan_(a_pair, x_odd, work[n_odd:])
    n_even = steps - n_odd
    if n_even > 1:
        x_even[1:].addcmul_(a_even[1:], x_odd[: n_even - 1])  # even positions from their solved predecessor


def scan_reverse_(a: Tensor, x: Tensor, work: Tensor) -> None:
    """Solve ``x[t] <- x[t] + a[t+1] * x[t+1]`` for ``t = T-2 .. 0`` (in that order) in place along dim 0.

    This is the adjoint of :func:`scan_` with the same decays (``a[0]`` is not used).

    Args:
        a: Decays, shape ``(T, ...)``; read only.
        x: Inputs, replaced by the solution; shape ``(T, ...)``.
        work: Scratch space of at least ``_work_rows(T)`` rows with the trailing shape of ``x``.
    """
    steps = x.shape[0]
    if steps < 2:
        return
    n_odd = steps // 2
    n_even = steps - n_odd
    x_even, x_odd = x[0::2], x[1::2]
    a_even, a_odd = a[0::2], a[1::2]
    x_even[:n_odd].addcmul_(a_odd, x_odd)  # pairs (2k, 2k+1) combined
    if n_even > 1:
        a_pair = work[:n_even]  # a_pair[k] links even position 2k-2 to 2k; a_pair[0] is never read
        torch.mul(a_odd[: n_even - 1], a_even[1:], out=a_pair[1:])
        scan_reverse_(a_pair, x_even, work[n_even:])
        x_odd[: n_even - 1].addcmul_(a_even[1:], x_even[1:])  # odd positions from their solved successor


def _decays_(out: Tensor, dt: Tensor, A: Tensor) -> Tensor:
    """``out = exp(dt * A)``: ``dt`` ``(T, b, G, P)``, ``A`` ``(G, N, P)``, ``out`` ``(T, b, G, N, P)``."""
    torch.mul(dt.unsqueeze(-2), A, out=out)
    return out.exp_()


def _outer_(out: Tensor, per_channel: Tensor, per_state: Tensor) -> Tensor:
    """``out[..., n, p] = per_channel[..., p] * per_state[..., n]``, e.g. the drives ``dt u B``."""
    return torch.mul(per_channel.unsqueeze(-2), per_state.unsqueeze(-1), out=out)


def _time_major(x: Tensor, groups: int) -> Tensor:
    """``(b, G·k, L)`` or ``(b, G, k, L)`` -> contiguous ``(L, b, G, k)``.

    Written as one 2-D transpose ``(b·G·k, L) -> (L, b·G·k)``, which PyTorch copies with a cache-blocked kernel
    (several times faster than a general permuted copy).
    """
    batch, length = x.shape[0], x.shape[-1]
    return x.reshape(-1, length).t().contiguous().view(length, batch, groups, -1)


def _time_last(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Inverse of :func:`_time_major`: ``(L, b, G, k)`` -> contiguous tensor of ``shape`` (``L`` last)."""
    return x.reshape(x.shape[0], -1).t().contiguous().view(shape)


def _chunks(length: int, chunk: int) -> list[tuple[int, int]]:
    return [(t0, min(t0 + chunk, length)) for t0 in range(0, length, chunk)]


def _scan_forward(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int, keep_starts: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Forward over time-major inputs.

    Args:
        u, dt: Shape ``(L, b, G, P)``.
        A: Shape ``(G, N, P)``.
        B, C: Shape ``(L, b, G, N)``.
        chunk: Time steps per chunk.
        keep_starts: Also return the state before every chunk.

    Returns:
        ``y`` ``(L, b, G, P)`` (without the ``D`` term), the last state ``(b, G, N, P)`` and, when asked, the
        chunk start states ``(n_chunks, b, G, N, P)`` (the first one is zero).
    """
    length = u.shape[0]
    state_shape = (*u.shape[1:3], *A.shape[1:])
    steps = min(chunk, length)
    decay = u.new_empty(steps, *state_shape)
    states = u.new_empty(steps, *state_shape)
    work = u.new_empty(_work_rows(steps), *state_shape)
    dtu = dt * u
    y = torch.empty_like(u)
    spans = _chunks(length, chunk)
    starts = u.new_zeros(len(spans), *state_shape) if keep_starts else None
    h = None
    for i, (t0, t1) in enumerate(spans):
        n = t1 - t0
        a, x = _decays_(decay[:n], dt[t0:t1], A), _outer_(states[:n], dtu[t0:t1], B[t0:t1])
        if h is not None:
            x[0].addcmul_(a[0], h)
            if starts is not None:
                starts[i].copy_(h)
        scan_(a, x, work)
        torch.matmul(C[t0:t1].unsqueeze(-2), x, out=y[t0:t1].unsqueeze(-2))
        h = x[n - 1].clone()
    assert h is not None
    return y, h, starts


class _ChunkedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C, D):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        batch, dim, length = u.shape
        groups, dstate = B.shape[1], B.shape[2]
        u_t, dt_t, B_t, C_t = (_time_major(t, groups) for t in (u, dt, B, C))
        A3 = rearrange(A, "(g p) n -> g n p", g=groups).contiguous()
        chunk = chunk_length(length, batch * dim * dstate, u.device)
        train = any(ctx.needs_input_grad)
        y_t, last, starts = _scan_forward(u_t, dt_t, A3, B_t, C_t, chunk, keep_starts=train)
        if D is not None:
            y_t.addcmul_(u_t, rearrange(D, "(g p) -> g p", g=groups))
        if train:
            ctx.save_for_backward(u_t, dt_t, A3, B_t, C_t, D, starts)
            ctx.chunk = chunk
        y = _time_last(y_t, u.shape)
        return y, rearrange(last, "b g n p -> b (g p) n")

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dlast):  # type: ignore[override]
        u, dt, A, B, C, D, starts = ctx.saved_tensors
        length, batch, groups, per = u.shape
        shape = (batch, groups * per, length)
        need_u, need_dt, need_A, need_B, need_C, need_D = ctx.needs_input_grad
        dy_t = torch.zeros_like(u) if dy is None else _time_major(dy, groups)
        carry = None if dlast is None else rearrange(dlast, "b (g p) n -> b g n p", g=groups).contiguous()

        chunk = ctx.chunk
        state_shape = (batch, *A.shape)
        steps = min(chunk, length)
        buf_a = u.new_empty(steps, *state_shape)
        buf_h = u.new_empty(steps, *state_shape)
        buf_g = u.new_empty(steps, *state_shape)
        buf_t = u.new_empty(steps, *state_shape)
        work = u.new_empty(_work_rows(steps), *state_shape)
        dtu = dt * u
        g_dot_b = torch.empty_like(u)  # sum_n g_t B_t
        ddt_a = torch.empty_like(u)  # sum_n A g_t a_t h_{t-1}
        dB = torch.empty_like(B) if need_B else None
        dC = torch.empty_like(C) if need_C else None
        dA = torch.zeros_like(A) if need_A else None

        for i, (t0, t1) in reversed(list(enumerate(_chunks(length, chunk)))):
            n = t1 - t0
            a = _decays_(buf_a[:n], dt[t0:t1], A)
            h = _outer_(buf_h[:n], dtu[t0:t1], B[t0:t1])
            if i > 0:
                h[0].addcmul_(a[0], starts[i])
            scan_(a, h, work)
            g = _outer_(buf_g[:n], dy_t[t0:t1], C[t0:t1])
            if carry is not None:
                g[n - 1].add_(carry)
            scan_reverse_(a, g, work)

            tmp = buf_t[:n]
            torch.matmul(B[t0:t1].unsqueeze(-2), g, out=g_dot_b[t0:t1].unsqueeze(-2))
            if dB is not None:
                torch.mul(g, dtu[t0:t1].unsqueeze(-2), out=tmp)
                torch.sum(tmp, dim=-1, out=dB[t0:t1])
            if dC is not None:
                torch.mul(h, dy_t[t0:t1].unsqueeze(-2), out=tmp)
                torch.sum(tmp, dim=-1, out=dC[t0:t1])
            # w_t = g_t a_t h_{t-1}: the gradient that reaches the decay a_t; a_0 g_0 also carries to the chunk before
            w = a.mul_(g)
            carry = w[0].clone() if i > 0 else None
            w[1:].mul_(h[:-1])
            if i > 0:
                w[0].mul_(starts[i])
            else:
                w[0].zero_()
            torch.mul(w, A, out=tmp)
            torch.sum(tmp, dim=-2, out=ddt_a[t0:t1])
            if dA is not None:
                torch.mul(w, dt[t0:t1].unsqueeze(-2), out=tmp)
                dA.add_(tmp.sum(dim=(0, 1)))

        du = ddt = dD = None
        if need_u:
            du_t = g_dot_b.mul(dt)
            if D is not None:
                du_t.addcmul_(dy_t, rearrange(D, "(g p) -> g p", g=groups))
            du = _time_last(du_t, shape)
        if need_dt:
            ddt = _time_last(ddt_a.addcmul_(g_dot_b, u), shape)
        if need_D and D is not None:
            dD = rearrange((dy_t * u).sum(dim=(0, 1)), "g p -> (g p)")
        return (
            du,
            ddt,
            None if dA is None else rearrange(dA, "g n p -> (g p) n"),
            None if dB is None else _time_last(dB, (batch, *dB.shape[2:], length)),
            None if dC is None else _time_last(dC, (batch, *dC.shape[2:], length)),
            dD,
        )


def core(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, want_last: bool
) -> tuple[Tensor, Tensor | None]:
    """Core recurrence in chunked pure PyTorch (contract in :mod:`ssmad.ssm._core`).

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
    y, last = _ChunkedScan.apply(u, dt, A, B, C, D)
    return y, (last if want_last else None)


__all__ = ["BUDGET", "CHUNK", "chunk_length", "core", "scan_", "scan_reverse_"]
