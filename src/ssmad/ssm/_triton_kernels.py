"""Triton kernels of the ``triton`` selective-scan backend (imported only by :mod:`ssmad.ssm.triton_scan`).

This module imports :mod:`triton` at the top, so it is imported lazily: never at ``import ssmad`` time. Triton reads
``TRITON_INTERPRET`` when a kernel is *decorated*: its own library functions (``tl.sum``, ``tl.flip``, ...) when
:mod:`triton` is first imported, ours when this module is. The interpreter needs both in interpreted form, so
``TRITON_INTERPRET=1`` must be set before the process first imports :mod:`triton`; :data:`INTERPRETED` records
whether it was.

Layouts (all contiguous float32): ``u, dt, y, du, ddt`` ``(batch, D, L)``; ``A`` ``(D, N)``; ``B, C``
``(batch, G, N, L)``; per-chunk start states ``(batch, D, n_chunks, N)``.

Work split: one program per ``(batch, group, block of BLOCK_D channels of that group)``, so every channel of a
program reads the same ``B``/``C`` rows. A program walks the sequence in chunks of ``T`` steps, keeping its state
``(BLOCK_D, BLOCK_N)`` in registers. Inside a chunk the linear recurrence ``h_t = a_t h_{t-1} + x_t`` is solved with
:func:`triton.language.associative_scan` over pairs ``(a, x)`` along the time axis of a ``(BLOCK_D, BLOCK_N, T)``
tile; the state carried in from the previous chunk is folded into the first element (``x_0 += a_0 h``), so only
the ``x`` part of the scan is needed. Positions past ``L`` (and padded channels/states) load ``dt = 0``, ``B = 0``,
which makes them identity elements ``(1, 0)``: the state passes through unchanged.

Backward (reverse time): for each chunk, last to first, the states are recomputed from the start state saved by
the forward, and the adjoint ``g_t = C_t dy_t + a_{t+1} g_{t+1}`` is solved with a *forward* scan on tiles loaded
in reversed time order (``tl.flip`` turns the result back). ``reverse=True`` scans are not used: with
non-commutative combine functions they have had wrong results on GPUs (triton-lang/triton#4362, #8412). With
``a_t h_{t-1} = h_t - x_t`` no shifted tile is needed::

    du_t  = D dy_t + dt_t sum_n g_t B_t            ddt_t = u_t sum_n g_t B_t + sum_n A g_t (h_t - x_t)
    dA    = sum_{b,t} dt_t g_t (h_t - x_t)         dD    = sum_{b,t} dy_t u_t
    dB_t  = sum_{channels} dt_t u_t g_t             dC_t  = sum_{channels} dy_t h_t

Sums over a program's channels are reduced in registers. ``dB``/``dC`` sum over the channel blocks of a group: stored
directly when a group is one block, else added with ``tl.atomic_add`` (float32, so the order of the additions, and
the last bits, can change from run to run, as with mamba-ssm). ``dA``/``dD`` are written per batch element and
summed by the caller.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Whether the kernels of this process run in Triton's interpreter (``TRITON_INTERPRET=1`` at first import).
INTERPRETED: bool = False  # set at the end of the module, once the kernels are defined


@triton.jit
def _combine(a1, x1, a2, x2):
    # (a1, x1) comes first in scan order: h -> a2 (a1 h + x1) + x2
    return a1 * a2, a2 * x1 + x2


@triton.jit
def _scan_fwd_kernel(
    u_ptr,
    dt_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    y_ptr,
    start_ptr,
    last_ptr,
    L,
    DIM,
    G,
    P,
    N,
    NCHUNK,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    T: tl.constexpr,
    HAS_D: tl.constexpr,
    SAVE_STARTS: tl.constexpr,
    SAVE_LAST: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # int64 offsets: large tensors exceed 2**31 elements
    g = tl.program_id(1)
    j = tl.program_id(2)
    offs_p = j * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_p < P
    offs_d = g * P + offs_p
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    mask_dn = mask_d[:, None] & mask_n[None, :]

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    A3 = A[:, :, None]
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0)
    row = (b * DIM + offs_d) * L  # start of each channel's sequence
    bc_row = ((b * G + g) * N + offs_n) * L  # start of each state's B/C row
    state_row = ((b * DIM + offs_d) * NCHUNK)[:, None] * N + offs_n[None, :]
    first = (offs_t == 0)[None, None, :]
    last_col = (offs_t == T - 1)[None, None, :]

    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for c in range(0, NCHUNK):
        if SAVE_STARTS:
            tl.store(start_ptr + state_row + c * N, h, mask=mask_dn)
        t = c * T + offs_t
        m_dt = mask_d[:, None] & (t < L)[None, :]
        m_nt = mask_n[:, None] & (t < L)[None, :]
        u = tl.load(u_ptr + row[:, None] + t[None, :], mask=m_dt, other=0.0)
        dt = tl.load(dt_ptr + row[:, None] + t[None, :], mask=m_dt, other=0.0)
        Bt = tl.load(B_ptr + bc_row[:, None] + t[None, :], mask=m_nt, other=0.0)
        Ct = tl.load(C_ptr + bc_row[:, None] + t[None, :], mask=m_nt, other=0.0)
        a = tl.exp(dt[:, None, :] * A3)
        x = (dt * u)[:, None, :] * Bt[None, :, :]
        x = tl.where(first, x + a * h[:, :, None], x)
        _, hs = tl.associative_scan((a, x), axis=2, combine_fn=_combine)
        y = tl.sum(hs * Ct[None, :, :], axis=1)
        if HAS_D:
            y += Dv[:, None] * u
        tl.store(y_ptr + row[:, None] + t[None, :], y, mask=m_dt)
        h = tl.sum(tl.where(last_col, hs, 0.0), axis=2)
    if SAVE_LAST:
        last_off = (b * DIM + offs_d)[:, None] * N + offs_n[None, :]
        tl.store(last_ptr + last_off, h, mask=mask_dn)


@triton.jit
def _scan_bwd_kernel(
    u_ptr,
    dt_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    dy_ptr,
    start_ptr,
    dlast_ptr,
    du_ptr,
    ddt_ptr,
    dA_ptr,
    dD_ptr,
    dB_ptr,
    dC_ptr,
    L,
    DIM,
    G,
    P,
    N,
    NCHUNK,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    T: tl.constexpr,
    HAS_D: tl.constexpr,
    HAS_DLAST: tl.constexpr,
    ATOMIC: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)  # int64 offsets: large tensors exceed 2**31 elements
    g = tl.program_id(1)
    j = tl.program_id(2)
    offs_p = j * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_p < P
    offs_d = g * P + offs_p
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    mask_dn = mask_d[:, None] & mask_n[None, :]

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    A3 = A[:, :, None]
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0)
    row = (b * DIM + offs_d) * L
    bc_row = ((b * G + g) * N + offs_n) * L
    state_row = ((b * DIM + offs_d) * NCHUNK)[:, None] * N + offs_n[None, :]
    first = (offs_t == 0)[None, None, :]
    last_col = (offs_t == T - 1)[None, None, :]

    if HAS_DLAST:
        carry = tl.load(dlast_ptr + (b * DIM + offs_d)[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    else:
        carry = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)

    for cc in range(0, NCHUNK):
        c = NCHUNK - 1 - cc
        t = c * T + offs_t
        m_dt = mask_d[:, None] & (t < L)[None, :]
        m_nt = mask_n[:, None] & (t < L)[None, :]
        u = tl.load(u_ptr + row[:, None] + t[None, :], mask=m_dt, other=0.0)
        dt = tl.load(dt_ptr + row[:, None] + t[None, :], mask=m_dt, other=0.0)
        dy = tl.load(dy_ptr + row[:, None] + t[None, :], mask=m_dt, other=0.0)
        Bt = tl.load(B_ptr + bc_row[:, None] + t[None, :], mask=m_nt, other=0.0)

        # states of the chunk, recomputed from its start state
        h0 = tl.load(start_ptr + state_row + c * N, mask=mask_dn, other=0.0)
        a = tl.exp(dt[:, None, :] * A3)
        x = (dt * u)[:, None, :] * Bt[None, :, :]
        _, hs = tl.associative_scan((a, tl.where(first, x + a * h0[:, :, None], x)), axis=2, combine_fn=_combine)

        # adjoint g_t = C_t dy_t + a_{t+1} g_{t+1}, scanned forward over the chunk read backwards (tr = reversed t)
        tr = c * T + (T - 1 - offs_t)
        m_dr = mask_d[:, None] & (tr < L)[None, :]
        m_nr = mask_n[:, None] & (tr < L)[None, :]
        m_next = mask_d[:, None] & (tr + 1 < L)[None, :]
        dt_next = tl.load(dt_ptr + row[:, None] + tr[None, :] + 1, mask=m_next, other=0.0)
        dy_r = tl.load(dy_ptr + row[:, None] + tr[None, :], mask=m_dr, other=0.0)
        C_r = tl.load(C_ptr + bc_row[:, None] + tr[None, :], mask=m_nr, other=0.0)
        alpha = tl.exp(dt_next[:, None, :] * A3)
        beta = dy_r[:, None, :] * C_r[None, :, :]
        beta = tl.where(first, beta + alpha * carry[:, :, None], beta)
        _, gs_r = tl.associative_scan((alpha, beta), axis=2, combine_fn=_combine)
        carry = tl.sum(tl.where(last_col, gs_r, 0.0), axis=2)  # g at the chunk's first step
        gs = tl.flip(gs_r, 2)

        gB = tl.sum(gs * Bt[None, :, :], axis=1)  # (BLOCK_D, T)
        du = dt * gB
        if HAS_D:
            du += Dv[:, None] * dy
            dD_acc += tl.sum(dy * u, axis=1)
        w = gs * (hs - x)  # g_t a_t h_{t-1}
        ddt = u * gB + tl.sum(w * A3, axis=1)
        dA_acc += tl.sum(w * dt[:, None, :], axis=2)
        dB = tl.sum(gs * (dt * u)[:, None, :], axis=0)  # (BLOCK_N, T)
        dC = tl.sum(hs * dy[:, None, :], axis=0)
        tl.store(du_ptr + row[:, None] + t[None, :], du, mask=m_dt)
        tl.store(ddt_ptr + row[:, None] + t[None, :], ddt, mask=m_dt)
        if ATOMIC:  # other programs hold other channels of the group
            tl.atomic_add(dB_ptr + bc_row[:, None] + t[None, :], dB, mask=m_nt)
            tl.atomic_add(dC_ptr + bc_row[:, None] + t[None, :], dC, mask=m_nt)
        else:
            tl.store(dB_ptr + bc_row[:, None] + t[None, :], dB, mask=m_nt)
            tl.store(dC_ptr + bc_row[:, None] + t[None, :], dC, mask=m_nt)

    tl.store(dA_ptr + (b * DIM + offs_d)[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + b * DIM + offs_d, dD_acc, mask=mask_d)


@triton.jit
def _directional_fwd_kernel(
    x_ptr,
    xdbl_ptr,
    w_ptr,
    bias_ptr,
    A_ptr,
    D_ptr,
    index_ptr,
    y_ptr,
    L,
    DIM,
    K,
    R,
    N,
    NCHUNK,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_R: tl.constexpr,
    T: tl.constexpr,
    HAS_D: tl.constexpr,
):
    # one program per (batch, block of channels): the K directions run one after the other, each adding its
    # output into y at the positions it visits; a barrier between directions orders the read-modify-writes
    b = tl.program_id(0).to(tl.int64)  # int64 offsets: large tensors exceed 2**31 elements
    j = tl.program_id(1)
    offs_d = j * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < DIM
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_r = tl.arange(0, BLOCK_R)
    mask_r = offs_r < R
    offs_t = tl.arange(0, T)
    mask_dn = mask_d[:, None] & mask_n[None, :]
    first = (offs_t == 0)[None, None, :]
    last_col = (offs_t == T - 1)[None, None, :]
    width = R + 2 * N  # row length of xdbl per (position, direction)

    for k in range(0, K):
        A = tl.load(A_ptr + (k * DIM + offs_d)[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
        A3 = A[:, :, None]
        W = tl.load(
            w_ptr + (k * DIM + offs_d)[:, None] * R + offs_r[None, :],
            mask=mask_d[:, None] & mask_r[None, :],
            other=0.0,
        )  # (BLOCK_D, BLOCK_R)
        bias = tl.load(bias_ptr + k * DIM + offs_d, mask=mask_d, other=0.0)
        if HAS_D:
            Dv = tl.load(D_ptr + k * DIM + offs_d, mask=mask_d, other=0.0)
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for c in range(0, NCHUNK):
            t = c * T + offs_t
            mask_t = t < L
            pos = tl.load(index_ptr + k * L + t, mask=mask_t, other=0).to(tl.int64)
            x_off = (b * L + pos)[None, :] * DIM + offs_d[:, None]  # (BLOCK_D, T)
            m_dt = mask_d[:, None] & mask_t[None, :]
            u = tl.load(x_ptr + x_off, mask=m_dt, other=0.0)
            row = ((b * L + pos) * K + k) * width  # (T,)
            dts = tl.load(
                xdbl_ptr + row[None, :] + offs_r[:, None], mask=mask_r[:, None] & mask_t[None, :], other=0.0
            )  # (BLOCK_R, T)
            m_nt = mask_n[:, None] & mask_t[None, :]
            Bt = tl.load(xdbl_ptr + row[None, :] + R + offs_n[:, None], mask=m_nt, other=0.0)
            Ct = tl.load(xdbl_ptr + row[None, :] + R + N + offs_n[:, None], mask=m_nt, other=0.0)
            raw = tl.sum(W[:, :, None] * dts[None, :, :], axis=1) + bias[:, None]
            # softplus with PyTorch's threshold (x > 20 -> x); log1p(e) as log(1 + e) * e / ((1 + e) - 1), which
            # stays accurate for small e (Goldberg's trick) where log(1 + e) alone loses the digits of e
            e = tl.exp(tl.minimum(raw, 20.0))
            one_e = 1.0 + e
            log1p = tl.where(one_e == 1.0, e, tl.log(one_e) * e / (one_e - 1.0))
            dt = tl.where(raw > 20.0, raw, log1p)
            dt = tl.where(m_dt, dt, 0.0)
            a = tl.exp(dt[:, None, :] * A3)
            xs = (dt * u)[:, None, :] * Bt[None, :, :]
            xs = tl.where(first, xs + a * h[:, :, None], xs)
            _, hs = tl.associative_scan((a, xs), axis=2, combine_fn=_combine)
            out = tl.sum(hs * Ct[None, :, :], axis=1)
            if HAS_D:
                out += Dv[:, None] * u
            prev = tl.load(y_ptr + x_off, mask=m_dt, other=0.0)
            tl.store(y_ptr + x_off, prev + out, mask=m_dt)
            h = tl.sum(tl.where(last_col, hs, 0.0), axis=2)
        tl.debug_barrier()


def _interpreted() -> bool:
    from triton.runtime.interpreter import InterpretedFunction

    return all(isinstance(f, InterpretedFunction) for f in (tl.sum, tl.flip, _combine, _scan_fwd_kernel))


INTERPRETED = _interpreted()
