"""SS2D: a selective state-space layer that reads a 2-D feature map along several scan directions (spec A.5).

The map is read as K sequences (a scan curve in up to eight directions, :mod:`ssmad.scans.directions`); each
direction has its own input-dependent SSM parameters (``x_proj``, ``dt_proj``, ``A_log``, ``D``), all K sequences
go through ONE grouped selective-scan call, and the K outputs are put back in raster order and summed::

    x (B, H, W, C) ─ in_proj ─┬─ x ─ depthwise conv 3×3 ─ SiLU ─ K-direction scan ─ sum ─ LayerNorm ─┐
                              └─ z ───────────────────────────────────────────────────── SiLU ─────── × ─ out_proj

:class:`HSSBlock` is MambaAD's Hybrid State-Space block: ``y = x + DropPath(SS2D(LayerNorm(x)))`` (no MLP).
:class:`DirectionalSSM` holds the per-direction parameters and the scan shared with ACMamba's RSAL
(:mod:`ssmad.layers.bidirectional`).

Parameter names follow MambaAD's ``SS2D`` (``in_proj``, ``conv2d``, ``x_proj_weight``, ``dt_projs_weight``,
``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``; ``ln_1``/``self_attention`` in the block) so
that checkpoints convert by dropping the stored scan tables (``scans.index_flat*``), which are rebuilt here from the
curve name and the map size. Sizes need not be square: a map of any ``H × W`` is scanned with the curve of its
own size (and of the ``W × H`` size in transposed/rotated directions).
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from ..scans import check_scan_name, direction_ids, direction_tables, gather_directions, merge_directions
from ..ssm import is_exporting, selective_scan
from ..ssm.directional import directional_scan, fused_available
from ..ssm.init import a_log_init, d_init, dt_bias_init, dt_weight_init_, x_proj_weight_init
from .droppath import DropPath

__all__ = ["SS2D", "DirectionalSSM", "HSSBlock", "resolve_dt_rank"]


def resolve_dt_rank(dt_rank: int | str, d_model: int) -> int:
    """Rank of the step-size projection: ``ceil(d_model / 16)`` for ``"auto"``, else the given integer."""
    if dt_rank == "auto":
        return math.ceil(d_model / 16)
    if isinstance(dt_rank, int) and not isinstance(dt_rank, bool) and dt_rank >= 1:
        return dt_rank
    raise ConfigError(f"dt_rank must be 'auto' or a positive integer, got {dt_rank!r}.")


def _check_odd_kernel(d_conv: int) -> int:
    if not isinstance(d_conv, int) or d_conv < 1 or d_conv % 2 == 0:
        raise ConfigError(
            f"d_conv must be a positive odd integer (a 'same'-padded depthwise convolution), got {d_conv!r}; "
            "MambaAD and ACMamba use 3."
        )
    return d_conv


class DirectionalSSM(nn.Module):
    """Per-direction selective-SSM parameters and the grouped scan over K sequences.

    Holds, for K directions of ``d_inner`` channels each: ``x_proj_weight`` ``(K, R + 2N, d_inner)``,
    ``dt_projs_weight`` ``(K, d_inner, R)``, ``dt_projs_bias`` ``(K, d_inner)``, ``A_logs`` ``(K · d_inner, N)`` and
    ``Ds`` ``(K · d_inner,)``, initialised as in Mamba (:mod:`ssmad.ssm.init`).

    Args:
        d_inner: Channels of every sequence.
        num_sequences: K.
        d_state: State size N.
        dt_rank: Rank R of the step-size projection.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init: ``"random"`` or ``"constant"`` step-projection weights.
        dt_scale: Scale of the step-projection weights.
        dt_init_floor: Lower clamp of the initial step sizes.
        scan_backend: Selective-scan backend (``auto``, ``reference``, ``cpu``, ``torch``, ``cuda``).
    """

    def __init__(
        self,
        d_inner: int,
        num_sequences: int,
        d_state: int = 16,
        dt_rank: int = 1,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = dt_rank
        self.num_sequences = num_sequences
        self.scan_backend = scan_backend
        k = num_sequences
        self.x_proj_weight = nn.Parameter(x_proj_weight_init(dt_rank + 2 * d_state, d_inner, copies=k))
        self.dt_projs_weight = nn.Parameter(
            dt_weight_init_(torch.empty(k, d_inner, dt_rank), dt_rank, dt_scale, dt_init)
        )
        self.dt_projs_bias = nn.Parameter(dt_bias_init(k * d_inner, dt_min, dt_max, dt_init_floor).view(k, d_inner))
        self.dt_projs_bias._no_reinit = True  # type: ignore[attr-defined]
        self.A_logs = a_log_init(d_state, d_inner, copies=k, merge=True)
        self.Ds = d_init(d_inner, copies=k, merge=True)

    def scan_sequences(self, xs: Tensor) -> Tensor:
        """Run the K sequences through their own selective SSMs in one grouped scan.

        Args:
            xs: Sequences, shape ``(batch, K, d_inner, L)``.

        Returns:
            SSM outputs in float32 (float64 for float64 input), shape ``(batch, K, d_inner, L)``.
        """
        k = xs.shape[1]
        # the recurrence runs in float32 (float64 stays float64, e.g. for gradcheck), whatever autocast chose
        dtype = torch.float64 if xs.dtype == torch.float64 else torch.float32
        # Both projections are batched matmuls over the K directions, (K, ·, ·) @ (batch, K, ·, L): the K sequences
        # keep their layout (no permuted copy of the large (batch, K, d, L) tensor) and the step sizes come out
        # contiguous, ready for the scan. Reference: x_dbl[b, k] = x_proj_weight[k] @ xs[b, k] and
        # delta[b, k] = dt_projs_weight[k] @ x_dbl[b, k, :R] + dt_projs_bias[k].
        x_dbl = torch.matmul(self.x_proj_weight, xs)  # (batch, K, R + 2N, L)
        dts, bs, cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        delta = torch.matmul(self.dt_projs_weight, dts).to(dtype)  # (batch, K, d, L)
        # The bias (and, without autograd, the softplus) are applied in place on that fresh matmul output instead of
        # inside the scan, which would allocate two more tensors of the size of the K sequences. A graph being
        # exported gets the plain softplus of the scan (exporters have no translation of the ``out=`` variant).
        delta = delta.add_(self.dt_projs_bias.to(dtype).unsqueeze(-1))
        softplus_in_scan = (torch.is_grad_enabled() and delta.requires_grad) or is_exporting()
        if not softplus_in_scan:
            torch.ops.aten.softplus.out(delta, 1, 20, out=delta)  # F.softplus(delta), written over its input
        out = cast(
            Tensor,
            selective_scan(
                rearrange(xs, "b k d l -> b (k d) l").to(dtype),
                rearrange(delta, "b k d l -> b (k d) l"),
                -torch.exp(self.A_logs.to(dtype)),
                bs.to(dtype).contiguous(),
                cs.to(dtype).contiguous(),
                self.Ds.to(dtype),
                delta_softplus=softplus_in_scan,
                backend=self.scan_backend,
            ),
        )
        return rearrange(out, "b (k d) l -> b k d l", k=k)

    def use_fused(self, x: Tensor) -> bool:
        """Whether :meth:`scan_positions` can replace gather → :meth:`scan_sequences` → merge for input ``x``.

        True when no gradient is wanted (inference) and the scan backend resolves to the compiled CPU kernel or to
        the Triton one (float32).
        """
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return fused_available(self.scan_backend, x.device, dtype)

    def scan_positions(self, x: Tensor, index: Tensor) -> Tensor:
        """Scan channels-last positions in the K orders of ``index`` and sum the outputs at their positions.

        The same result as gathering the K sequences, :meth:`scan_sequences` and merging them back, computed by
        :func:`ssmad.ssm.directional_scan` (one fused pass on the CPU kernel when no gradient is wanted). The
        projections to ``[dts | B | C]`` are one matmul of ``x`` with the K stacked ``x_proj`` weights.

        Args:
            x: Channels-last inputs, shape ``(batch, L, d_inner)``.
            index: ``index[k, t]`` = position visited at step ``t`` of direction ``k``, shape ``(K, L)``.

        Returns:
            Summed SSM outputs in float32 (float64 for float64 input), shape ``(batch, L, d_inner)``.
        """
        k = index.shape[0]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.to(dtype)
        weight = rearrange(self.x_proj_weight.to(dtype), "k e d -> d (k e)")
        xdbl = rearrange(torch.matmul(x, weight), "b l (k e) -> b l k e", k=k)
        return directional_scan(
            x,
            xdbl,
            self.dt_projs_weight.to(dtype),
            self.dt_projs_bias.to(dtype),
            -torch.exp(self.A_logs.to(dtype)).view(k, self.d_inner, self.d_state),
            self.Ds.to(dtype).view(k, self.d_inner),
            index,
            backend=self.scan_backend,
        )


class SS2D(DirectionalSSM):
    """Multi-direction 2-D selective SSM on channels-last maps (MambaAD's ``SS2D``).

    Args:
        d_model: Input/output channels C.
        d_state: State size N.
        d_conv: Kernel size of the depthwise convolution (odd).
        expand: ``d_inner = expand · d_model``.
        dt_rank: ``"auto"`` (``ceil(d_model / 16)``) or an integer.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init: ``"random"`` or ``"constant"`` step-projection weights.
        dt_scale: Scale of the step-projection weights.
        dt_init_floor: Lower clamp of the initial step sizes.
        num_directions: K = 1, 2, 4 or 8 scan directions (MambaAD configs: 8).
        scan_type: Scan curve: ``sweep``, ``scan``, ``zorder``, ``zigzag`` or ``hilbert``.
        dropout: Dropout on the output.
        conv_bias: Bias in the depthwise convolution.
        bias: Bias in ``in_proj`` and ``out_proj``.
        scan_backend: Selective-scan backend (``auto``, ``reference``, ``cpu``, ``torch``, ``cuda``).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 3,
        expand: float = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        num_directions: int = 8,
        scan_type: str = "hilbert",
        dropout: float = 0.0,
        conv_bias: bool = True,
        bias: bool = False,
        scan_backend: str = "auto",
    ) -> None:
        d_inner = int(expand * d_model)
        super().__init__(
            d_inner,
            len(direction_ids(num_directions)),
            d_state=d_state,
            dt_rank=resolve_dt_rank(dt_rank, d_model),
            dt_min=dt_min,
            dt_max=dt_max,
            dt_init=dt_init,
            dt_scale=dt_scale,
            dt_init_floor=dt_init_floor,
            scan_backend=scan_backend,
        )
        self.d_model = d_model
        self.num_directions = num_directions
        self.scan_type = check_scan_name(scan_type)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv2d = nn.Conv2d(
            d_inner,
            d_inner,
            kernel_size=_check_odd_kernel(d_conv),
            padding=(d_conv - 1) // 2,
            groups=d_inner,
            bias=conv_bias,
        )
        self.act = nn.SiLU()
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._tables: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}

    def scan_tables(self, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Gather tables ``(index, inverse)``, each ``(K, h · w)``, for an ``h × w`` map on ``device`` (cached)."""
        key = (h, w, torch.device(device))
        tables = self._tables.get(key)
        if tables is None:
            if len(self._tables) >= 16:
                self._tables.clear()
            tables = direction_tables(self.scan_type, h, w, self.num_directions, device=device)
            self._tables[key] = tables
        return tables

    def forward_core(self, x: Tensor) -> Tensor:
        """Scan a channels-first map along the K directions and sum the results in raster order.

        Args:
            x: Map after the depthwise convolution and SiLU, shape ``(batch, d_inner, H, W)``.

        Returns:
            Summed SSM outputs (float32), shape ``(batch, d_inner, H · W)``.
        """
        h, w = x.shape[-2:]
        index, inverse = self.scan_tables(h, w, x.device)
        xs = gather_directions(rearrange(x, "b d h w -> b d (h w)"), index)
        return merge_directions(self.scan_sequences(xs), inverse)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer.

        Args:
            x: Channels-last map, shape ``(batch, H, W, d_model)``.

        Returns:
            Shape ``(batch, H, W, d_model)``.
        """
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise InputError(
                f"SS2D expects a channels-last map (batch, H, W, {self.d_model}), got shape {tuple(x.shape)}; "
                "permute (B, C, H, W) inputs with x.permute(0, 2, 3, 1)."
            )
        h, w = x.shape[1:3]
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(rearrange(x, "b h w d -> b d h w")))
        if self.use_fused(x):  # inference on the CPU kernel: no gathered copies, channels last throughout
            index, _ = self.scan_tables(h, w, x.device)
            y = self.scan_positions(rearrange(x, "b d h w -> b (h w) d"), index)
            y = rearrange(y, "b (h w) d -> b h w d", h=h)
        else:
            y = rearrange(self.forward_core(x), "b d (h w) -> b h w d", h=h)
        y = self.out_norm(y) * F.silu(z)
        return self.dropout(self.out_proj(y))

    def extra_repr(self) -> str:
        """Hyper-parameters shown by ``print(module)``."""
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
            f"num_directions={self.num_directions}, scan_type={self.scan_type!r}, scan_backend={self.scan_backend!r}"
        )


class HSSBlock(nn.Module):
    """MambaAD's Hybrid State-Space block: ``y = x + DropPath(SS2D(LayerNorm(x)))``.

    Args:
        dim: Channels C.
        drop_path: Stochastic-depth probability.
        norm_eps: LayerNorm epsilon (MambaAD: PyTorch's default 1e-5).
        **ss2d_kwargs: Passed to :class:`SS2D` (``d_state``, ``num_directions``, ``scan_type``, ``scan_backend`` …).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_eps: float = 1e-5, **ss2d_kwargs: Any) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=norm_eps)
        self.self_attention = SS2D(d_model=dim, **ss2d_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to a channels-last map ``(batch, H, W, dim)``; same shape out."""
        return x + self.drop_path(self.self_attention(self.ln_1(x)))
