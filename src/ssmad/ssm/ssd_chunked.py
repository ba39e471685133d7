"""The chunked dual form of the SSD scan in plain PyTorch (any device): the fast path behind ``ssd_scan``.

The sequence is cut into chunks of ``Q`` steps (the last one zero-padded: ``dt = 0`` keeps the state, a zero input
adds nothing). With log-decays ``a_t = dt_t A`` and input weights ``w_t`` (``w = dt`` for Mamba-2)::

    intra-chunk   y_i  += Σ_{j ≤ i in the chunk} exp(Σ_{k=j+1..i} a_k) (C_i · B_j) w_j x_j     = (M ∘ C Bᵀ) (w x)
    chunk state   S_c   = Σ_j exp(Σ_{k=j+1..Q-1} a_k) w_j x_j B_jᵀ                            (state made in chunk c)
    inter-chunk   h_c   = exp(Σ_{chunk c} a) h_{c-1} + S_c                                   (h_{-1} = initial state)
    chunk output  y_i  += exp(Σ_{k ≤ i in the chunk} a_k) h_{c-1} C_i

Every sum of log-decays between two positions is summed directly, never as a difference of two long cumulative
sums, so no precision is lost to cancellation: :func:`segsum` is the readable definition, :func:`decay_matrix`
forms the same sums as one matmul with a 0/1 segment indicator. The inter-chunk recurrence is the same
semiseparable product one level up (chunks instead of steps), solved by blocks (:func:`scalar_decay_scan`) so that
its cost stays linear in the number of chunks. All maths runs in float32 (float64 for float64 inputs).

Gradients come from autograd. Every op here is a batched matmul, an exp, a cumulative sum or an elementwise product
whose backward is an op of the same kind and size, so the backward costs about twice the forward (1.5–2.5× measured by
``ssmad bench ssd``), which is the order a hand-written backward would have too; one could save memory passes by
recomputing the decay matrix instead of keeping it, not change the cost's order. Autograd keeps the
``(b, H, L/Q, Q, Q)`` decay matrix and ``C Bᵀ`` products, ``Q / P`` and ``Q / N`` times the size of ``x``. What
separates this path from the roofline at MambaADv2's small heads (P = N = 16) is the number of unfused passes over
tensors the size of ``x`` in eager PyTorch and the low efficiency of batched 16 × 16 matmuls on a CPU; only a fused
kernel removes those.

The Mamba-3 trapezoid rule goes through the same core with a modified input weight and a diagonal correction; the
derivation is in :mod:`ssmad.ssm.ssd_mamba3`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from .reference import compute_dtype
from .softplus import softplus
from .ssd_mamba3 import trapezoid_weights
from .ssd_reference import prepare_dt, skip_and_gate


def segsum(a: Tensor) -> Tensor:
    """Segment sums of ``a`` along its last axis, computed without cancellation.

    Args:
        a: Values ``(..., T)``.

    Returns:
        ``(..., T, T)`` with ``out[..., i, j] = Σ_{k=j+1..i} a[..., k]`` for ``i >= j`` (0 on the diagonal) and
        ``-inf`` above the diagonal, so that ``exp(out)`` is the causal 1-semiseparable decay matrix.
    """
    T = a.shape[-1]
    ones = torch.ones(T, T, dtype=torch.bool, device=a.device)
    rep = repeat(a, "... i -> ... i j", j=T).masked_fill(~torch.tril(ones, diagonal=-1), 0.0)
    return torch.cumsum(rep, dim=-2).masked_fill(~torch.tril(ones), float("-inf"))


def _suffix_sum(a: Tensor) -> Tensor:
    """``out[..., j] = Σ_{k=j+1..T-1} a[..., k]`` along the last axis (exclusive reverse cumulative sum)."""
    rev = torch.flip(torch.cumsum(torch.flip(a, dims=(-1,)), dim=-1), dims=(-1,))
    return F.pad(rev[..., 1:], (0, 1))


_MASKED = -1e30  # exp() of this is exactly 0; finite, so that 0 · it stays 0 in the backward matmul


@functools.lru_cache(maxsize=32)
def _segment_indicator(T: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(T + 1, T · T)``: row ``k < T`` marks segments ``(i, j)`` with ``j < k <= i``, row ``T`` masks ``i < j``."""
    k = torch.arange(T, device=device).view(T, 1, 1)
    i = torch.arange(T, device=device).view(1, T, 1)
    j = torch.arange(T, device=device).view(1, 1, T)
    ind = ((j < k) & (k <= i)).to(dtype).reshape(T, T * T)
    mask = torch.where(i[0] < j[0], _MASKED, 0.0).to(dtype).reshape(1, T * T)
    return torch.cat([ind, mask])


def decay_matrix(a: Tensor) -> Tensor:
    """``exp(segsum(a))`` in one matmul and one exp: the causal decay matrix of a chunk, stably.

    ``segsum(a)[i, j]`` is formed as ``a @ indicator``, a sum of exactly the ``a_k`` of the segment (the other
    terms are exact zeros), so it is as accurate as :func:`segsum` while touching the ``T × T`` matrix twice
    instead of five times.

    Args:
        a: Log-decays ``(..., T)``.

    Returns:
        ``(..., T, T)`` with ``exp(Σ_{k=j+1..i} a_k)`` for ``i >= j`` and 0 above the diagonal.
    """
    T = a.shape[-1]
    ones = torch.ones(*a.shape[:-1], 1, dtype=a.dtype, device=a.device)
    seg = torch.cat([a, ones], dim=-1) @ _segment_indicator(T, a.dtype, a.device)
    return torch.exp(seg).unflatten(-1, (T, T))


def scalar_decay_scan(log_decay: Tensor, S: Tensor, block: int = 16) -> Tensor:
    """``h_c = exp(log_decay_c) h_{c-1} + S_c`` (``h_{-1} = 0``) for every ``c``, by blocks, in ``O(n · block)``.

    Within a block of ``block`` steps the recurrence is one semiseparable matrix product
    ``exp(segsum(log_decay)) @ S``; the block ends form the same recurrence one level up (``n / block`` steps),
    solved recursively, and each block's entering state reaches its steps decayed by ``exp(cumsum)``.

    Args:
        log_decay: ``(..., n)`` non-positive log-decays.
        S: ``(..., n, F)`` inputs.
        block: Steps per block.

    Returns:
        All states ``(..., n, F)``.
    """
    n = log_decay.shape[-1]
    if n <= 2 * block:
        return decay_matrix(log_decay) @ S
    pad = (-n) % block
    ld = F.pad(log_decay, (0, pad))
    Sp = F.pad(S, (0, 0, 0, pad))
    ld = rearrange(ld, "... (k q) -> ... k q", q=block)
    Sp = rearrange(Sp, "... (k q) f -> ... k q f", q=block)
    local = decay_matrix(ld) @ Sp  # states from inside each block only
    ends = scalar_decay_scan(ld.sum(dim=-1), local[..., -1, :], block)  # true state at each block's end
    entering = F.pad(ends[..., :-1, :], (0, 0, 1, 0))
    out = local + torch.exp(torch.cumsum(ld, dim=-1))[..., None] * entering[..., None, :]
    return rearrange(out, "... k q f -> ... (k q) f")[..., :n, :]


def chunked_core(
    x: Tensor, a: Tensor, w: Tensor, B: Tensor, C: Tensor, initial_states: Tensor | None, chunk_size: int
) -> tuple[Tensor, Tensor]:
    """``h_t = exp(a_t) h_{t-1} + w_t x_t B_tᵀ``, ``y_t = h_t C_t`` by the chunked dual form.

    Args:
        x: ``(b, L, H, P)``.
        a: Log-decays ``(b, L, H)`` (``dt A``, non-positive).
        w: Input weights ``(b, L, H)``.
        B: ``(b, L, G, N)``, ``H % G == 0``.
        C: ``(b, L, G, N)``.
        initial_states: ``(b, H, P, N)`` or None.
        chunk_size: ``Q``.

    Returns:
        ``y`` ``(b, L, H, P)`` and the final state ``(b, H, P, N)``, all in the dtype of ``x``.
    """
    batch, length, heads, headdim = x.shape
    groups, dstate = B.shape[2], B.shape[3]
    r = heads // groups
    Q = max(1, min(chunk_size, length))
    pad = (-length) % Q
    xw = x * w[..., None]
    if pad:
        xw = F.pad(xw, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    # heads-major layouts, so that every product below is a batched matmul over (b, g, r, chunk)
    xs = rearrange(xw, "b (c q) (g r) p -> b g r c q p", q=Q, r=r).contiguous()
    ac = rearrange(a, "b (c q) (g r) -> b g r c q", q=Q, r=r)
    Bc = rearrange(B, "b (c q) g n -> b g 1 c q n", q=Q).contiguous()
    Cc = rearrange(C, "b (c q) g n -> b g 1 c q n", q=Q).contiguous()

    # intra-chunk: (M ∘ C Bᵀ)(w x) within each chunk
    decay = decay_matrix(ac)  # b g r c i j
    y = (decay * (Cc @ Bc.transpose(-1, -2))) @ xs  # b g r c q p

    # the state each chunk makes on its own, decayed to the chunk's end (transposed: N × P)
    to_end = torch.exp(_suffix_sum(ac))  # b g r c q
    states = (Bc * to_end[..., None]).transpose(-1, -2) @ xs  # b g r c n p

    # inter-chunk recurrence over the chunk states (entry 0 is the initial state)
    if initial_states is None:
        init = states.new_zeros(batch, groups, r, 1, dstate, headdim)
    else:
        init = rearrange(initial_states, "b (g r) p n -> b g r 1 n p", r=r)
    flat = rearrange(torch.cat([init, states], dim=3), "b g r c n p -> b g r c (n p)")
    passed = scalar_decay_scan(F.pad(ac.sum(dim=-1), (1, 0)), flat)
    passed = rearrange(passed, "b g r c (n p) -> b g r c n p", n=dstate)
    entering, final = passed[:, :, :, :-1], passed[:, :, :, -1]

    # what the state entering each chunk contributes to the chunk's outputs
    from_start = torch.exp(torch.cumsum(ac, dim=-1))  # b g r c q
    y = y + (Cc * from_start[..., None]) @ entering

    y = rearrange(y, "b g r c q p -> b (c q) (g r) p")[:, :length]
    return y, rearrange(final, "b g r n p -> b (g r) p n")


def ssd_scan_chunked(
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
) -> Tensor | tuple[Tensor, Tensor]:
    """The ``torch`` backend of :func:`ssmad.ssm.ssd_scan` (inputs already checked; same arguments and returns)."""
    cdt = compute_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states, trapezoid_lambda)
    heads = x.shape[2]
    xc, Bc, Cc = x.to(cdt), B.to(cdt), C.to(cdt)
    dt = prepare_dt(dt, dt_bias, False, cdt)
    dt = softplus(dt) if dt_softplus else dt
    a = dt * A.to(cdt)
    init = None if initial_states is None else initial_states.to(cdt)
    if trapezoid_lambda is None:
        y, final = chunked_core(xc, a, dt, Bc, Cc, init, chunk_size)
    else:
        # a plain scan with modified input weights plus a diagonal correction (derived in ssd_mamba3)
        w, c_next = trapezoid_weights(dt, trapezoid_lambda.to(cdt))
        y, final = chunked_core(xc, a, w, Bc, Cc, init, chunk_size)
        cb_diag = repeat((Cc * Bc).sum(-1), "b l g -> b l (g r)", r=heads // Bc.shape[2])
        y = y - (c_next * cb_diag)[..., None] * xc
    out = skip_and_gate(y, xc, D, z).to(x.dtype)
    return (out, final) if return_final_states else out
