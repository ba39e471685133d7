"""The directional-SSM core shared by SS2D (:mod:`ssmad.layers.ss2d`) and RSAL (:mod:`ssmad.layers.bidirectional`).

Both layers read their input as K sequences that visit the same L positions in K orders, run K selective SSMs with
their own input-dependent parameters, and sum the K outputs back at their positions::

    x (B, *S, C) ─ in_proj ─┬─ x ─ depthwise conv ─ SiLU ─ K-direction scan ─ sum ─ LayerNorm ─┐
                            └─ z ──────────────────────────────────────────────── gate ─────── × ─ out_proj ─ dropout

* :class:`DirectionalSSM` holds the per-direction parameters (``x_proj``, ``dt_proj``, ``A_log``, ``D``) and the
  two ways of running the K-direction scan: gather → one grouped :func:`ssmad.ssm.selective_scan` → merge
  (:meth:`~DirectionalSSM.forward_core`, the readable composition, any backend) and
  :func:`ssmad.ssm.directional_scan` on channels-last positions (:meth:`~DirectionalSSM.scan_positions`, fused
  forward and backward on the ``cpu`` backend, used for inference and training).
* :class:`DirectionalLayer` adds the projections, the depthwise convolution, the gate and the output projection
  around it. A concrete layer says only what differs: its convolution (``conv2d`` on maps, ``conv1d`` on
  sequences), its scan orders and its gate (SiLU in SS2D, GELU in RSAL).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError
from ..scans import gather_directions, merge_directions
from ..ssm import is_exporting, selective_scan
from ..ssm.directional import directional_scan, fused_available
from ..ssm.init import a_log_init, d_init, dt_bias_init, dt_weight_init_, x_proj_weight_init
from ..ssm.softplus import softplus_
from .dense import linear, linear_split
from .norm_act import layer_norm_silu_gate

__all__ = ["DirectionalLayer", "DirectionalSSM", "check_odd_kernel", "resolve_dt_rank"]


def resolve_dt_rank(dt_rank: int | str, d_model: int) -> int:
    """Rank of the step-size projection: ``ceil(d_model / 16)`` for ``"auto"``, else the given integer."""
    if dt_rank == "auto":
        return math.ceil(d_model / 16)
    if isinstance(dt_rank, int) and not isinstance(dt_rank, bool) and dt_rank >= 1:
        return dt_rank
    raise ConfigError(f"dt_rank must be 'auto' or a positive integer, got {dt_rank!r}.")


def check_odd_kernel(d_conv: int) -> int:
    """``d_conv`` when it is a positive odd integer (a 'same'-padded depthwise convolution); else ConfigError."""
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
        # inside the scan, which would allocate two more tensors of the size of the K sequences.
        delta = delta.add_(self.dt_projs_bias.to(dtype).unsqueeze(-1))
        softplus_in_scan = (torch.is_grad_enabled() and delta.requires_grad) or is_exporting()
        if not softplus_in_scan:
            softplus_(delta)  # F.softplus(delta), written over its input
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

        True when the scan backend resolves to the compiled CPU kernel, for inference and training alike (the fused
        kernel has its own backward), or to the Triton one when no gradient is wanted; other backends, dtypes and a
        missing compiler take the composition.
        """
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        return fused_available(self.scan_backend, x.device, dtype, grad=grad)

    def scan_positions(self, x: Tensor, index: Tensor) -> Tensor:
        """Scan channels-last positions in the K orders of ``index`` and sum the outputs at their positions.

        The same result as gathering the K sequences, :meth:`scan_sequences` and merging them back, computed by
        :func:`ssmad.ssm.directional_scan` (the fused CPU kernel, its own backward under autograd). The
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
        weight = rearrange(self.x_proj_weight.to(dtype), "k e d -> (k e) d")
        xdbl = rearrange(linear(x, weight), "b l (k e) -> b l k e", k=k)
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


class DirectionalLayer(DirectionalSSM):
    """A directional selective-SSM layer on channels-last inputs ``(batch, *S, d_model)`` (``S``: map or sequence).

    ``in_proj`` → (``x``, ``z``); ``x`` → depthwise convolution → SiLU → K-direction scan → sum → ``out_norm``;
    times ``gate(z)``; ``out_proj``; dropout. Subclasses set :attr:`gate` and implement :meth:`build_conv` (which
    registers the convolution under the subclass's own parameter name), :meth:`conv` and :meth:`build_tables`.

    The scan takes :meth:`DirectionalSSM.scan_positions` (the fused CPU kernel) when :meth:`use_fused` says so and
    :meth:`forward_core` (gather → grouped scan → merge) otherwise; both give the same sums.

    Args:
        d_model: Input/output channels C.
        num_sequences: K, the number of scan orders.
        d_state: State size N.
        d_conv: Kernel size of the depthwise convolution (odd).
        expand: ``d_inner = expand · d_model``.
        dt_rank: ``"auto"`` (``ceil(d_model / 16)``) or an integer.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init: ``"random"`` or ``"constant"`` step-projection weights.
        dt_scale: Scale of the step-projection weights.
        dt_init_floor: Lower clamp of the initial step sizes.
        dropout: Dropout on the output.
        conv_bias: Bias in the depthwise convolution.
        bias: Bias in ``in_proj`` and ``out_proj``.
        scan_backend: Selective-scan backend (``auto``, ``reference``, ``cpu``, ``torch``, ``cuda``).
    """

    #: Activation applied to ``z`` before it multiplies the normalised scan output.
    gate: Callable[[Tensor], Tensor] = staticmethod(F.silu)

    def __init__(
        self,
        d_model: int,
        num_sequences: int,
        d_state: int = 16,
        d_conv: int = 3,
        expand: float = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        dropout: float = 0.0,
        conv_bias: bool = True,
        bias: bool = False,
        scan_backend: str = "auto",
    ) -> None:
        d_inner = int(expand * d_model)
        super().__init__(
            d_inner,
            num_sequences,
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
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.build_conv(d_inner, check_odd_kernel(d_conv), conv_bias)
        self.act = nn.SiLU()
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._tables: dict[tuple[tuple[int, ...], torch.device], tuple[Tensor, Tensor]] = {}

    def build_conv(self, d_inner: int, d_conv: int, conv_bias: bool) -> None:
        """Create and register the depthwise convolution (called once by ``__init__``, after ``in_proj``)."""
        raise NotImplementedError

    def conv(self, x: Tensor) -> Tensor:
        """Depthwise convolution of ``(batch, *S, d_inner)`` (channels last), returned as ``(batch, d_inner, *S)``."""
        raise NotImplementedError

    def build_tables(self, size: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
        """Scan orders ``(index, inverse)``, each ``(K, L)``, for an input of spatial size ``size`` on ``device``."""
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`ssmad.errors.InputError` when ``x`` does not have the layer's input layout."""

    def scan_tables(self, *size: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Gather tables ``(index, inverse)``, each ``(K, L)``, for spatial size ``size`` on ``device`` (cached)."""
        key = (tuple(size), torch.device(device))
        tables = self._tables.get(key)
        if tables is None:
            if len(self._tables) >= 16:
                self._tables.clear()
            tables = self.build_tables(tuple(size), device)
            self._tables[key] = tables
        return tables

    def forward_core(self, x: Tensor) -> Tensor:
        """Gather the K sequences, scan them in one grouped call and sum the outputs at their positions.

        Args:
            x: Input after the convolution and SiLU, channels first, shape ``(batch, d_inner, *S)``.

        Returns:
            Summed SSM outputs (float32), shape ``(batch, d_inner, L)`` with ``L = prod(S)`` in raster order.
        """
        index, inverse = self.scan_tables(*x.shape[2:], device=x.device)
        xs = gather_directions(x.flatten(2), index)
        return merge_directions(self.scan_sequences(xs), inverse)

    def scan(self, x: Tensor) -> Tensor:
        """Summed K-direction scan of ``(batch, d_inner, *S)`` (channels first), as ``(batch, *S, d_inner)``."""
        size = x.shape[2:]
        if self.use_fused(x):  # the CPU kernel: no gathered copies, channels last throughout
            index, _ = self.scan_tables(*size, device=x.device)
            y = self.scan_positions(rearrange(x.flatten(2), "b d l -> b l d"), index)
        else:
            y = rearrange(self.forward_core(x), "b d l -> b l d")
        return y.unflatten(1, size)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer.

        Args:
            x: Channels-last input, shape ``(batch, *S, d_model)``.

        Returns:
            Shape ``(batch, *S, d_model)``.
        """
        self.check_input(x)
        x, z = linear_split(x, self.in_proj.weight, self.in_proj.bias, (self.d_inner, self.d_inner))
        y = self.scan(self.act(self.conv(x)))
        norm = self.out_norm
        if (
            self.gate is F.silu
            and isinstance(norm, nn.LayerNorm)
            and len(norm.normalized_shape) == 1
            and norm.weight is not None
            and norm.bias is not None
        ):
            # out_norm(y) * silu(z), as one kernel on float32 CPU tensors (the same composition elsewhere)
            y = layer_norm_silu_gate(y, z, norm.weight, norm.bias, norm.eps)
        else:
            y = norm(y) * self.gate(z)
        return self.dropout(linear(y, self.out_proj.weight, self.out_proj.bias))

    def describe_scan(self) -> str:
        """Scan settings for :meth:`extra_repr` beyond the SSM sizes (``"name=value, "`` items; none here)."""
        return ""

    def extra_repr(self) -> str:
        """Hyper-parameters shown by ``print(module)``."""
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
            f"{self.describe_scan()}scan_backend={self.scan_backend!r}"
        )
