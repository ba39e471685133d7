"""HSS-v2: MambaADv2's state-space block, SSD (Mamba-2) lineage with Mamba-3 switches (*inspired-by*, spec B).

Only the MambaADv2 abstract is known (no code, no numbers); everything below is this project's interpretation,
labelled as such in the README ("MambaADv2: interpretations").

Layer :class:`SSD2D` on a channels-last map ``x (B, H, W, C)``, ``d_inner = expand · C`` channels split into
``nheads = d_inner / headdim`` heads of ``headdim`` channels::

    x ─ in_proj ─┬─ x, B, C ─ depthwise conv 3×3 ─ SiLU ─ [RMSNorm + bias on B, C] ─┐
                 ├─ dt (one per head), [λ (trapezoid), θ (rotary)] ───────────────────┤
                 │                                                                    ├─ recurrent path ─┐
                 │                                                                    ├─ matrix path ────┼─ + D·x
                 └─ z ─────────────────────────────────────────────────── SiLU ─ × ─ LayerNorm(sum) ─ out_proj

**The two computational paths** (the abstract: "linear recurrence" for *local continuity*, "parallel matrix
formulation" for *global contextual comparison*). Mathematically the SSD recurrence and its matrix form are the
same operator; to give them different jobs, as the abstract describes, they compute different things here:

* **recurrent path** (``recurrent_path``): the SSD scan with per-head scalar decay ``a_t = exp(Δ_t A_h)`` along a
  2-D scan curve, in K directions (:mod:`ssmad.scans`), the K outputs put back in raster order and summed::

      h_t = a_t h_{t-1} + Δ_t x_t B_tᵀ,   y_t = h_t C_t           (per direction, per head)

  The decay makes its memory local: a position mostly sees its predecessors along the curve (local continuity).
  The K directions are folded into the batch of one scan call. The recurrence runs through
  :func:`ssmad.ssm.ssd_scan`: on a CPU its compiled SSD kernel (3.5-3.9× faster forward + backward than the
  compiled selective-scan kernel given the same problem, ``ssmad bench ssd``), elsewhere the chunked dual form.
  For inference on a CPU (no gradients, not exporting) the kernel's directional forward
  (:func:`ssmad.ssm.ssd_cpu.ssd_scan_cpu_directional`) reads ``x`` and sums the K outputs in raster order itself,
  so the K gathered copies of ``x`` and the K outputs are never built.
  The selective-scan form (``Δ`` and ``A`` repeated over each head's channels) stays available as
  ``scan_backend="selective"``; all are tested against the sequential oracle.
* **matrix path** (``matrix_path``): the SSD matrix form ``y = (M ∘ C Bᵀ)(Δ·x)`` with the mask ``M`` replaced by
  the uniform, non-causal ``1/L`` (no decay, no order): every position's query ``C_i`` is compared with every
  position's key ``B_j``::

      y_i = Σ_j (C_i · B_j) Δ_j x_j / L = C_i S,   S = Σ_j B_jᵀ Δ_j x_j / L     (per head; S is (N, headdim))

  computed in the factorised form (linear in L, no L × L matrix). It is order-free, so it needs no scan.

Both paths share ``x, B, C, Δ``; their sum plus the skip ``D · x`` is normalised and gated by ``SiLU(z)``.

**Mamba-3 switches** (spec B; each a constructor flag, each tested against a sequential oracle):

* ``trapezoid`` — exponential-trapezoidal discretisation ``h_t = α_t h_{t-1} + β_t B_{t-1} x_{t-1} + γ_t B_t x_t``
  with ``α_t = exp(Δ_t A)``, ``γ_t = λ_t Δ_t``, ``β_t = (1 − λ_t) Δ_t α_t``, ``λ_t = sigmoid(projection)``. It is
  computed with ONE ordinary SSD scan by the exact change of variables ``h_t = k_t + ν_t B_t x_t``,
  ``ν_t = −(1 − λ_{t+1}) Δ_{t+1}`` (``ν_L = 0``)::

      k_t = α_t k_{t-1} + (λ_t Δ_t + (1 − λ_{t+1}) Δ_{t+1}) B_t x_t,   y_t = C_t·k_t + ν_t (C_t · B_t) x_t

  (the scan gets ``x_t · w_t / Δ_t`` as input so that its own ``Δ_t`` factor gives the weight ``w_t``).
* ``rotary`` — data-dependent rotary state ("position-aware"): ``N/2`` angles ``θ_t`` projected from the input
  are accumulated along the scan, ``φ_t = Σ_{s≤t} θ_s``, and B and C are rotated pairwise by ``φ_t`` (pairs
  ``(n, n + N/2)``). This equals a complex diagonal state with transition ``α_t e^{-iθ_t}`` (pair ``n`` as the
  complex number ``b_n + i b_{n+N/2}``, output ``Re(h_t · conj(C_t))``). The angles accumulate along each
  direction's own curve; the matrix path uses the unrotated B, C (it has no order). Unlike Mamba-3 (angles per
  head, scaled by ``Δ``), the angles here belong to the one B/C group shared by all heads and are not scaled by
  ``Δ``: B and C then stay one group, which keeps the CPU scan ~2× cheaper at our head counts (our choice).
* ``bc_norm`` — RMSNorm over the state dimension on B and C, then a learnable bias initialised to 1 (Mamba-3).

:class:`HSSv2Block` is the residual block ``y = x + DropPath(SSD2D(LayerNorm(x)))``, as MambaAD's HSS block.

Interpretation choices (ours): B, C are one group shared by all heads (Mamba-2's ``ngroups=1``); the K directions
share all parameters (so a progressive scan plan can change K without new parameters, see
:mod:`ssmad.models.mambaadv2.scanning`); the depthwise convolution is 2-D over ``x, B, C`` together (Mamba-2
convolves ``xBC``; Mamba-3 drops it, we keep it for 2-D locality); initialisation follows Mamba-2 (``A`` uniform in
``[1, 16]``, step sizes log-uniform in ``[dt_min, dt_max]``, ``D = 1``).
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from ..scans import check_scan_name, direction_ids, direction_tables
from ..ssm import backend_available, is_exporting, selective_scan, ssd_cpu, ssd_scan, ssd_scan_ref
from ..ssm.init import inverse_softplus
from ..ssm.softplus import softplus
from .dense import linear, linear_split
from .droppath import DropPath

__all__ = [
    "SSD2D",
    "SSD_KERNELS",
    "HSSv2Block",
    "directional_ssd",
    "matrix_path",
    "resolve_kernel",
    "rotate_pairs",
    "sequence_ssd",
]


def rotate_pairs(t: Tensor, phi: Tensor) -> Tensor:
    """Rotate pairs ``(t[..., n], t[..., n + N/2])`` by the angles ``phi[..., n]``.

    Args:
        t: Shape ``(..., N)``, N even.
        phi: Angles, shape ``(..., N / 2)`` (broadcast against ``t``'s leading dimensions).

    Returns:
        Shape of the broadcast of ``t`` and ``phi`` (last dimension N).
    """
    a, b = t.chunk(2, dim=-1)
    cos, sin = torch.cos(phi), torch.sin(phi)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


#: Recurrent-path kernels (``scan_backend`` of :class:`SSD2D`).
SSD_KERNELS: tuple[str, ...] = ("auto", "ssd", "selective", "reference")


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """``auto`` → ``ssd`` (on a CPU :func:`ssmad.ssm.ssd_scan` picks its compiled kernel).

    On a CPU where only the compiled selective-scan kernel builds, ``selective``.
    """
    if kernel not in SSD_KERNELS:
        raise ConfigError(f"HSS-v2: scan_backend must be one of {', '.join(SSD_KERNELS)}, got {kernel!r}")
    if kernel != "auto":
        return kernel
    if device.type == "cpu" and not ssd_cpu.is_available() and backend_available("cpu", device):
        return "selective"
    return "ssd"


def _selective_form(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The SSD recurrence as a Mamba-1 selective scan: ``Δ`` and ``A`` of head ``h`` repeated over its channels.

    ``h_t = exp(Δ_t A_h) h_{t-1} + Δ_t x_t B_tᵀ`` per channel of head ``h`` is exactly the selective scan with
    ``delta[d] = Δ_{head(d)}`` and ``A[d, n] = A_{head(d)}``; B and C are grouped (one group per B/C group).
    """
    b, length, heads, p = x.shape
    n = B.shape[-1]
    u = rearrange(x, "b l h p -> b (h p) l")
    delta = rearrange(dt.unsqueeze(-1).expand(b, length, heads, p), "b l h p -> b (h p) l")
    a = A.repeat_interleave(p).unsqueeze(1).expand(heads * p, n)
    y = cast(
        Tensor,
        selective_scan(
            u.contiguous(),
            delta.contiguous(),
            a.contiguous(),
            rearrange(B, "b l g n -> b g n l").contiguous(),
            rearrange(C, "b l g n -> b g n l").contiguous(),
        ),
    )
    return rearrange(y, "b (h p) l -> b l h p", p=p)


def sequence_ssd(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    *,
    lam: Tensor | None = None,
    theta: Tensor | None = None,
    chunk_size: int = 64,
    kernel: str = "auto",
) -> Tensor:
    """SSD scan along sequences with the optional Mamba-3 trapezoid and rotary state (no skip term, no gate).

    Args:
        x: Inputs ``(batch, L, H, P)``.
        dt: Positive step sizes (after bias and softplus) ``(batch, L, H)``.
        A: Negative decay rates ``(H,)``.
        B: Input projections ``(batch, L, G, N)``.
        C: Output projections ``(batch, L, G, N)``.
        lam: Trapezoid weights ``λ`` in ``[0, 1]``, ``(batch, L, H)``; ``None`` = Euler/ZOH step of Mamba-2.
        theta: Rotary angles per step ``(batch, L, G, N / 2)``; ``None`` = real state.
        chunk_size: Chunk length of :func:`ssmad.ssm.ssd_scan`.
        kernel: ``ssd`` (:func:`ssmad.ssm.ssd_scan`, backend ``auto``), ``selective`` (the same recurrence through
            :func:`ssmad.ssm.selective_scan`, the compiled kernel on a CPU), ``reference`` (the sequential
            :func:`ssmad.ssm.ssd_scan_ref`) or ``auto`` (:func:`resolve_kernel`).

    Returns:
        ``y_t = C_t · h_t`` per head, shape ``(batch, L, H, P)``.
    """
    heads = x.shape[2]
    kernel = resolve_kernel(kernel, x.device)
    B, C = _rotary_bc(B, C, theta)
    if kernel in ("ssd", "reference"):
        # the trapezoid runs inside the scan (one ordinary SSD scan plus a diagonal correction, ssmad.ssm.ssd_mamba3)
        if kernel == "reference":
            return ssd_scan_ref(x, dt, A, B, C, trapezoid_lambda=lam)  # type: ignore[return-value]
        return ssd_scan(x, dt, A, B, C, chunk_size=chunk_size, trapezoid_lambda=lam)  # type: ignore[return-value]
    if lam is None:
        return _selective_form(x, dt, A, B, C)
    # the trapezoid as one plain scan (derivation in ssmad.ssm.ssd_mamba3): input weight w_t = λ_t Δ_t − ν_t with
    # ν_t = −(1 − λ_{t+1}) Δ_{t+1}, ν_L = 0, and the output correction ν_t (C_t · B_t) x_t
    nu = -F.pad(((1.0 - lam) * dt)[:, 1:], (0, 0, 0, 1))
    y = _selective_form(x * ((lam * dt - nu) / dt).unsqueeze(-1), dt, A, B, C)
    cb = torch.einsum("blgn,blgn->blg", C, B).repeat_interleave(heads // B.shape[2], dim=2)
    return y + (nu * cb).unsqueeze(-1) * x


def _rotary_bc(B: Tensor, C: Tensor, theta: Tensor | None) -> tuple[Tensor, Tensor]:
    """B and C turned by the accumulated angles ``φ_t = Σ_{s≤t} θ_s`` (per group and pair), or unchanged."""
    if theta is None:
        return B, C
    phi = torch.cumsum(theta, dim=1)
    return rotate_pairs(B, phi), rotate_pairs(C, phi)


def fused_inference(kernel: str, *tensors: Tensor | None) -> bool:
    """Whether the recurrent path may run on the kernel's directional forward (CPU, kernel built, no gradients)."""
    x = tensors[0]
    assert x is not None
    if kernel != "ssd" or x.device.type != "cpu" or is_exporting() or not ssd_cpu.is_available():
        return False
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors))


def _gather_seq(t: Tensor, flat_index: Tensor, k: int) -> Tensor:
    """``(batch, L, ...)`` raster tensor → ``(batch · K, L, ...)`` sequences in the K scan orders."""
    b, length = t.shape[:2]
    out = t.index_select(1, flat_index)
    return out.reshape(b * k, length, *t.shape[2:])


def directional_ssd(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    index: Tensor,
    inverse: Tensor,
    *,
    lam: Tensor | None = None,
    theta: Tensor | None = None,
    chunk_size: int = 64,
    kernel: str = "auto",
) -> Tensor:
    """The recurrent path: :func:`sequence_ssd` along K scan orders, outputs summed back in raster order.

    Args:
        x, dt, A, B, C, lam, theta: As in :func:`sequence_ssd`, in raster order (``L = H · W``).
        index: ``index[k, t]`` = raster position visited at step ``t`` of direction ``k``, ``(K, L)``.
        inverse: ``inverse[k, p]`` = step at which direction ``k`` visits raster position ``p``, ``(K, L)``.
        chunk_size, kernel: As in :func:`sequence_ssd`.

    Returns:
        ``Σ_k`` (direction ``k``'s output at each raster position), shape ``(batch, L, H, P)``.
    """
    k, length = index.shape
    b = x.shape[0]
    flat = index.reshape(-1)
    if fused_inference(resolve_kernel(kernel, x.device), x, dt, A, B, C, lam, theta):
        # inference on a CPU: the kernel reads x and sums the K outputs in raster order itself (the same maths as
        # below; only the small per-step tensors dt, B, C, λ, θ are gathered)
        Bk, Ck = _rotary_bc(
            _gather_seq(B, flat, k), _gather_seq(C, flat, k), None if theta is None else _gather_seq(theta, flat, k)
        )
        return ssd_cpu.ssd_scan_cpu_directional(
            x,
            _gather_seq(dt, flat, k),
            A,
            Bk,
            Ck,
            index,
            trapezoid_lambda=None if lam is None else _gather_seq(lam, flat, k),
        )
    y = sequence_ssd(
        _gather_seq(x, flat, k),
        _gather_seq(dt, flat, k),
        A,
        _gather_seq(B, flat, k),
        _gather_seq(C, flat, k),
        lam=None if lam is None else _gather_seq(lam, flat, k),
        theta=None if theta is None else _gather_seq(theta, flat, k),
        chunk_size=chunk_size,
        kernel=kernel,
    )
    # back to raster order: direction k's value for position p sits at step inverse[k, p] of sequence k
    if k == 1:
        return y.index_select(1, inverse[0])
    offsets = torch.arange(k, device=index.device).unsqueeze(1) * length
    back = (inverse + offsets).reshape(-1)
    y = y.reshape(b, k * length, *y.shape[2:]).index_select(1, back)
    return y.reshape(b, k, length, *y.shape[2:]).sum(dim=1)


def matrix_path(x: Tensor, dt: Tensor, B: Tensor, C: Tensor, add_to: Tensor | None = None) -> Tensor:
    """The parallel matrix path: ``y_i = Σ_j (C_i · B_j) Δ_j x_j / L`` for every head (uniform, non-causal mask).

    Args:
        x: Inputs ``(batch, L, H, P)``.
        dt: Step sizes ``(batch, L, H)``.
        B: Keys ``(batch, L, G, N)``.
        C: Queries ``(batch, L, G, N)``.
        add_to: Optional ``(batch, L, H, P)`` tensor the result is added to (in the same matrix product when
            ``G = 1``).

    Returns:
        Shape ``(batch, L, H, P)``: ``y`` or ``add_to + y``.
    """
    length = x.shape[1]
    g = B.shape[2]
    if g == 1:  # one group: S = Bᵀ (Δ·x) / L is (N, H·P) per image, y = C S, added in the same baddbmm
        b, _, h, p = x.shape
        xd = (x * dt.unsqueeze(-1)).reshape(b, length, h * p)
        state = torch.bmm(B[:, :, 0].transpose(1, 2), xd) / length
        if add_to is None:
            return torch.bmm(C[:, :, 0], state).view(b, length, h, p)
        return torch.baddbmm(add_to.reshape(b, length, h * p), C[:, :, 0], state).view(b, length, h, p)
    xg = rearrange(x * dt.unsqueeze(-1), "b l (g r) p -> b l g r p", g=g)
    state = torch.einsum("blgn,blgrp->bgrnp", B, xg) / length  # S per head: Σ_j B_jᵀ Δ_j x_j / L
    y = rearrange(torch.einsum("blgn,bgrnp->blgrp", C, state), "b l g r p -> b l (g r) p")
    return y if add_to is None else add_to + y


class _BCNorm(nn.Module):
    """RMSNorm over the last dimension with a learnable weight (init 1) and bias (init 1), Mamba-3's B/C norm."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.ones(dim))

    def forward(self, t: Tensor) -> Tensor:
        """Normalise ``(..., dim)``."""
        rms = torch.rsqrt(t.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return t * rms * self.weight + self.bias


class SSD2D(nn.Module):
    """Multi-direction 2-D SSD layer with a recurrent and a matrix path and Mamba-3 switches (module docstring).

    Args:
        d_model: Input/output channels C.
        d_state: State size N (even when ``rotary``).
        headdim: Channels per head P (``expand · d_model`` must be a multiple).
        expand: ``d_inner = expand · d_model``.
        d_conv: Kernel of the depthwise 2-D convolution on ``x, B, C`` (odd; 0 or 1 disables it).
        num_directions: Default number of scan directions K (1, 2, 4, 8); ``forward`` may override it.
        scan_type: Scan curve (``hilbert``, ``sweep``, ``scan``, ``zorder``, ``zigzag``).
        chunk_size: Chunk length of the SSD scan.
        recurrent_path: Use the recurrent (scan) path.
        matrix_path: Use the parallel matrix path.
        trapezoid: Mamba-3 exponential-trapezoidal discretisation.
        rotary: Mamba-3 data-dependent rotary state on B, C.
        bc_norm: Mamba-3 RMSNorm + bias on B, C.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init_floor: Lower clamp of the initial step sizes.
        a_init_range: Range of the initial ``-A`` (Mamba-2: 1 to 16).
        bias: Bias in ``in_proj`` and ``out_proj``.
        scan_backend: Kernel of the recurrent path: ``auto``, ``ssd``, ``selective`` or ``reference``
            (:func:`sequence_ssd`).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        headdim: int = 16,
        expand: float = 2,
        d_conv: int = 3,
        num_directions: int = 8,
        scan_type: str = "hilbert",
        chunk_size: int = 64,
        recurrent_path: bool = True,
        matrix_path: bool = True,
        trapezoid: bool = True,
        rotary: bool = True,
        bc_norm: bool = True,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        a_init_range: tuple[float, float] = (1.0, 16.0),
        bias: bool = False,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        d_inner = int(expand * d_model)
        if headdim < 1 or d_inner % headdim:
            raise ConfigError(
                f"HSS-v2: d_inner = expand · d_model = {d_inner} is not a multiple of headdim={headdim}; choose a "
                "headdim that divides it (e.g. 8 or 16)."
            )
        if not (recurrent_path or matrix_path):
            raise ConfigError("HSS-v2: switch on at least one of recurrent_path and matrix_path.")
        if rotary and d_state % 2:
            raise ConfigError(f"HSS-v2: rotary needs an even d_state, got {d_state}.")
        if d_conv > 1 and d_conv % 2 == 0:
            raise ConfigError(f"HSS-v2: d_conv must be odd (a 'same'-padded convolution), got {d_conv}.")
        direction_ids(num_directions)  # validates K
        self.d_model, self.d_inner, self.d_state, self.headdim = d_model, d_inner, d_state, headdim
        self.nheads = d_inner // headdim
        self.num_directions = num_directions
        self.scan_type = check_scan_name(scan_type)
        self.chunk_size = int(chunk_size)
        self.use_recurrent, self.use_matrix = bool(recurrent_path), bool(matrix_path)
        self.trapezoid, self.rotary, self.bc_norm = bool(trapezoid), bool(rotary), bool(bc_norm)
        resolve_kernel(scan_backend, torch.device("cpu"))  # validates the name
        self.scan_backend = scan_backend
        h, n = self.nheads, d_state
        # in_proj → [z | x | B | C | dt | λ? | θ?]
        self.split = [d_inner, d_inner, n, n, h] + ([h] if trapezoid else []) + ([n // 2] if rotary else [])
        self.in_proj = nn.Linear(d_model, sum(self.split), bias=bias)
        conv_dim = d_inner + 2 * n
        self.conv2d = (
            nn.Conv2d(conv_dim, conv_dim, d_conv, padding=d_conv // 2, groups=conv_dim) if d_conv > 1 else None
        )
        self.B_norm = _BCNorm(n) if bc_norm else None
        self.C_norm = _BCNorm(n) if bc_norm else None
        # Mamba-2 initialisation: A = -U(a_min, a_max) per head, softplus(dt_bias) log-uniform in [dt_min, dt_max]
        a = torch.empty(h).uniform_(*a_init_range)
        self.A_log = nn.Parameter(torch.log(a))
        self.A_log._no_weight_decay = True  # type: ignore[attr-defined]
        dt = torch.exp(torch.rand(h) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.dt_bias = nn.Parameter(inverse_softplus(dt.clamp(min=dt_init_floor)))
        self.dt_bias._no_weight_decay = True  # type: ignore[attr-defined]
        self.D = nn.Parameter(torch.ones(h))
        self.D._no_weight_decay = True  # type: ignore[attr-defined]
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self._tables: dict[tuple[int, int, int, torch.device], tuple[Tensor, Tensor]] = {}

    def scan_tables(self, k: int, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(index, inverse)`` tables ``(K, h · w)`` of ``k`` directions on an ``h × w`` map (cached)."""
        key = (k, h, w, torch.device(device))
        tables = self._tables.get(key)
        if tables is None:
            if len(self._tables) >= 32:
                self._tables.clear()
            tables = direction_tables(self.scan_type, h, w, k, device=device)
            self._tables[key] = tables
        return tables

    def forward(self, x: Tensor, num_directions: int | None = None) -> Tensor:
        """Apply the layer.

        Args:
            x: Channels-last map ``(batch, H, W, d_model)``.
            num_directions: Scan directions K for this call (default: the constructor's).

        Returns:
            Shape ``(batch, H, W, d_model)``.
        """
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise InputError(
                f"SSD2D expects a channels-last map (batch, H, W, {self.d_model}), got shape {tuple(x.shape)}"
            )
        hh, ww = x.shape[1:3]
        k = int(num_directions or self.num_directions)
        # in_proj's outputs z | x B C | dt | (lambda) | (theta), with x B C as one part
        sizes = [self.split[0], sum(self.split[1:4]), *self.split[4:]]
        parts = linear_split(x, self.in_proj.weight, self.in_proj.bias, sizes)
        z, xbc, dt = parts[0], parts[1], parts[2]
        if self.conv2d is not None:
            xbc = rearrange(self.conv2d(rearrange(xbc, "b h w c -> b c h w")), "b c h w -> b (h w) c")
        else:
            xbc = rearrange(xbc, "b h w c -> b (h w) c")
        # Without autograd (and outside export) fresh activations are overwritten in place: one large allocation, and
        # its page faults, less each (at 256 px the SiLU below took 5.8 ms on fresh memory, 1 ms on reused memory).
        inference = not torch.is_grad_enabled() and not is_exporting()
        xbc = F.silu(xbc, inplace=inference)  # only xbc's own elements are overwritten (a part or a conv output)
        xs, bs, cs = torch.split(xbc, [self.d_inner, self.d_state, self.d_state], dim=-1)
        if self.B_norm is not None and self.C_norm is not None:
            bs, cs = self.B_norm(bs), self.C_norm(cs)
        xs = rearrange(xs, "b l (h p) -> b l h p", p=self.headdim)
        bs, cs = bs.unsqueeze(2), cs.unsqueeze(2)  # one group
        dt = softplus(rearrange(dt, "b h w n -> b (h w) n") + self.dt_bias)
        A = -torch.exp(self.A_log.float())
        extra = 3
        lam = theta = None
        if self.trapezoid:
            lam = torch.sigmoid(rearrange(parts[extra], "b h w n -> b (h w) n"))
            extra += 1
        if self.rotary:
            theta = rearrange(parts[extra], "b h w r -> b (h w) 1 r")
        skip = self.D.view(1, 1, -1, 1)
        if self.use_recurrent:
            index, inverse = self.scan_tables(k, hh, ww, x.device)
            y = directional_ssd(
                xs,
                dt,
                A,
                bs,
                cs,
                index,
                inverse,
                lam=lam,
                theta=theta,
                chunk_size=self.chunk_size,
                kernel=self.scan_backend,
            )
            y = torch.addcmul(y, xs, skip)  # + D·x, in one pass
        else:
            y = xs * skip
        if self.use_matrix:
            y = matrix_path(xs, dt, bs, cs, add_to=y)
        y = rearrange(y, "b (h w) n p -> b h w (n p)", h=hh)
        y = self.out_norm(y).mul_(F.silu(z)) if inference else self.out_norm(y) * F.silu(z)
        return linear(y, self.out_proj.weight, self.out_proj.bias)

    def extra_repr(self) -> str:
        """Hyper-parameters shown by ``print(module)``."""
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, nheads={self.nheads}, d_state={self.d_state}, "
            f"directions={self.num_directions}, scan_type={self.scan_type!r}, recurrent={self.use_recurrent}, "
            f"matrix={self.use_matrix}, trapezoid={self.trapezoid}, rotary={self.rotary}, bc_norm={self.bc_norm}"
        )


class HSSv2Block(nn.Module):
    """HSS-v2 block: ``y = x + DropPath(SSD2D(LayerNorm(x)))`` (MambaAD's HSS block with the SSD layer).

    Args:
        dim: Channels C.
        drop_path: Stochastic-depth probability.
        norm_eps: LayerNorm epsilon.
        **ssd_kwargs: Passed to :class:`SSD2D`.
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_eps: float = 1e-5, **ssd_kwargs: Any) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=norm_eps)
        self.ssd = SSD2D(d_model=dim, **ssd_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, num_directions: int | None = None) -> Tensor:
        """Apply the block to ``(batch, H, W, dim)``; same shape out."""
        return x + self.drop_path(self.ssd(self.ln_1(x), num_directions))
